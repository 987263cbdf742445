//! A dataset: N samples, each one tensor per model input, read lazily in sorted file order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Axis;

use super::DataError;
use super::binary::read_binary;
use super::image::{ImageFormat, ImagePreprocess, ResizeMode, load_image};
use super::npy::read_npy;
use crate::ir::Tensor;
use crate::map_tensor;

/// How one model input's samples are read.
#[derive(Clone, Debug)]
pub enum SourceKind {
    /// Image files, preprocessed.
    Images {
        files: Vec<PathBuf>,
        preprocess: ImagePreprocess,
    },
    /// One `.npy` file per sample.
    NpyFiles(Vec<PathBuf>),
    /// Samples stacked along axis 0 of one tensor (a stacked `.npy` or a HiAI BINARY file).
    Stacked { path: PathBuf, data: Arc<Tensor> },
}

/// One model input's data source.
#[derive(Clone, Debug)]
pub struct Source {
    pub kind: SourceKind,
}

const IMAGE_EXT: &[&str] = &["png", "jpg", "jpeg"];

/// The files of `dir` with one of `exts` (case-insensitive), sorted by name.
pub fn list_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, DataError> {
    let err = |reason: String| DataError::File {
        path: dir.display().to_string(),
        reason,
    };
    let rd = std::fs::read_dir(dir).map_err(|e| err(format!("cannot read the folder: {e}")))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err(format!("no {} files in the folder", exts.join("/"))));
    }
    Ok(files)
}

/// The image files of a folder (sorted by name), or the one image file `path` names.
pub fn image_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if path.is_dir() {
        list_files(path, IMAGE_EXT)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(DataError::File {
            path: path.display().to_string(),
            reason: "no such file or folder".into(),
        })
    }
}

impl Source {
    /// Images from a folder (or a single image file).
    pub fn images(path: &Path, preprocess: ImagePreprocess) -> Result<Source, DataError> {
        let files = image_files(path)?;
        Ok(Source {
            kind: SourceKind::Images { files, preprocess },
        })
    }

    /// `.npy` samples: a folder of one-sample files, or one file stacked along axis 0.
    pub fn npy(path: &Path) -> Result<Source, DataError> {
        if path.is_dir() {
            return Ok(Source {
                kind: SourceKind::NpyFiles(list_files(path, &["npy"])?),
            });
        }
        let data = Arc::new(read_npy(path)?);
        if data.rank() == 0 {
            return Err(DataError::File {
                path: path.display().to_string(),
                reason: "a scalar cannot hold samples".into(),
            });
        }
        Ok(Source {
            kind: SourceKind::Stacked {
                path: path.to_path_buf(),
                data,
            },
        })
    }

    /// A HiAI BINARY calibration file.
    pub fn binary(path: &Path) -> Result<Source, DataError> {
        let data = Arc::new(read_binary(path)?);
        Ok(Source {
            kind: SourceKind::Stacked {
                path: path.to_path_buf(),
                data,
            },
        })
    }

    pub fn len(&self) -> usize {
        match &self.kind {
            SourceKind::Images { files, .. } => files.len(),
            SourceKind::NpyFiles(f) => f.len(),
            SourceKind::Stacked { data, .. } => data.shape()[0],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file name of sample `i` (for labels and messages).
    pub fn sample_name(&self, i: usize) -> String {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        };
        match &self.kind {
            SourceKind::Images { files, .. } => name(&files[i]),
            SourceKind::NpyFiles(f) => name(&f[i]),
            SourceKind::Stacked { path, .. } => format!("{}[{i}]", name(path)),
        }
    }

    /// Sample `i` with a leading batch dimension of 1. `rank` is the model input's rank:
    /// a one-sample `.npy` without the batch dimension gets one.
    pub fn load(&self, i: usize, rank: usize) -> Result<Tensor, DataError> {
        match &self.kind {
            SourceKind::Images { files, preprocess } => load_image(&files[i], preprocess),
            SourceKind::NpyFiles(f) => {
                let t = read_npy(&f[i])?;
                if t.rank() + 1 == rank {
                    let shape = [&[1][..], t.shape()].concat();
                    return Ok(t.reshaped(&shape).expect("same count"));
                }
                Ok(t)
            }
            SourceKind::Stacked { data, .. } => Ok(
                map_tensor!(data.as_ref(), a => a.slice_axis(Axis(0), (i..i + 1).into()).to_owned()),
            ),
        }
    }
}

/// One source per model input; sample `i` is the `i`-th of each.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub sources: Vec<Source>,
    /// Rank of each model input.
    pub ranks: Vec<usize>,
    /// NaN/±Inf values one activation may hold over a calibration pass before calibration
    /// fails (`max_nonfinite`; 0 by default: non-finite data is a data problem).
    pub nonfinite_limit: u64,
}

impl Dataset {
    /// Number of complete samples (the shortest source).
    pub fn len(&self) -> usize {
        self.sources.iter().map(Source::len).min().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i`: one `[1, ...]` tensor per model input.
    pub fn load(&self, i: usize) -> Result<Vec<Tensor>, DataError> {
        self.sources
            .iter()
            .zip(&self.ranks)
            .map(|(s, &r)| s.load(i, r))
            .collect()
    }

    /// The name of sample `i` (the first input's file name).
    pub fn sample_name(&self, i: usize) -> String {
        self.sources
            .first()
            .map(|s| s.sample_name(i))
            .unwrap_or_default()
    }
}

/// A default preprocess for a model input of `channels` channels (used when a config gives none).
pub fn default_preprocess(channels: usize, size: (usize, usize)) -> ImagePreprocess {
    let format = if channels == 1 {
        ImageFormat::Gray
    } else {
        ImageFormat::Rgb
    };
    ImagePreprocess {
        format,
        mean: vec![0.0; channels],
        std: vec![1.0; channels],
        resize: ResizeMode::Stretch,
        size,
        short_side: None,
    }
}
