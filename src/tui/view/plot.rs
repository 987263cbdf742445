//! A small line plotter into a cell grid: braille (2×4 dots per cell) or, with `--ascii`,
//! one character per cell. Deterministic and allocation-light, so it draws in microseconds.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use crate::tui::theme::Theme;

/// Dot bits of a braille cell by (column, row).
const BRAILLE: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
const ASCII_MARKS: [char; 3] = ['*', '+', 'o'];

pub struct Plot {
    w: usize,
    h: usize,
    ascii: bool,
    /// Per cell: braille bits (or 1 for an ASCII mark) and the last series drawn.
    cells: Vec<(u8, u8)>,
}

impl Plot {
    pub fn new(w: usize, h: usize, theme: &Theme) -> Plot {
        Plot {
            w,
            h,
            ascii: theme.ascii,
            cells: vec![(0, 0); w * h],
        }
    }

    fn res(&self) -> (usize, usize) {
        if self.ascii {
            (self.w, self.h)
        } else {
            (self.w * 2, self.h * 4)
        }
    }

    /// A dot at (x, y) in [0, 1]² (y up).
    pub fn dot(&mut self, x: f64, y: f64, series: u8) {
        let (rw, rh) = self.res();
        if !(x.is_finite() && y.is_finite()) || rw == 0 || rh == 0 {
            return;
        }
        let px = ((x.clamp(0.0, 1.0) * (rw - 1) as f64).round()) as usize;
        let py = (((1.0 - y.clamp(0.0, 1.0)) * (rh - 1) as f64).round()) as usize;
        let (cx, cy, bit) = if self.ascii {
            (px, py, 1)
        } else {
            (px / 2, py / 4, BRAILLE[px % 2][py % 4])
        };
        let c = &mut self.cells[cy * self.w + cx];
        c.0 |= bit;
        c.1 = series;
    }

    /// A polyline through `points` (x, y in [0, 1]); non-finite points break the line.
    pub fn line(&mut self, points: &[(f64, f64)], series: u8) {
        let (rw, rh) = self.res();
        let steps_per_unit = (rw.max(rh) * 2) as f64;
        for pair in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
                continue;
            }
            let n =
                (((x1 - x0).abs().max((y1 - y0).abs().min(1.0))) * steps_per_unit).ceil() as usize;
            for k in 0..=n.max(1) {
                let f = k as f64 / n.max(1) as f64;
                self.dot(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, series);
            }
        }
        if let [(x, y)] = points {
            self.dot(*x, *y, series);
        }
    }

    /// Writes the grid into `buf` at `area`, one style per series.
    pub fn render(&self, buf: &mut Buffer, area: Rect, styles: &[Style]) {
        for cy in 0..self.h.min(area.height as usize) {
            for cx in 0..self.w.min(area.width as usize) {
                let (bits, series) = self.cells[cy * self.w + cx];
                if bits == 0 {
                    continue;
                }
                let ch = if self.ascii {
                    ASCII_MARKS[series as usize % 3]
                } else {
                    char::from_u32(0x2800 + bits as u32).unwrap_or(' ')
                };
                let style = styles.get(series as usize).copied().unwrap_or_default();
                if let Some(cell) = buf.cell_mut((area.x + cx as u16, area.y + cy as u16)) {
                    cell.set_char(ch).set_style(style);
                }
            }
        }
    }

    /// Whether a cell is empty (for drawing markers behind the curves).
    pub fn is_empty(&self, cx: usize, cy: usize) -> bool {
        self.cells.get(cy * self.w + cx).is_none_or(|c| c.0 == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braille_dots_land_in_corners() {
        let mut p = Plot::new(2, 1, &Theme::PLAIN);
        p.dot(0.0, 1.0, 0); // top-left dot of cell 0
        p.dot(1.0, 0.0, 0); // bottom-right dot of cell 1
        assert_eq!(p.cells[0].0, 0x01);
        assert_eq!(p.cells[1].0, 0x80);
    }
}
