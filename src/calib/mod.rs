//! Activation calibration and quantization parameters, exactly per `CALIBRATION.md`.
//!
//! * [`Collector`] streams every activation of one tensor into a constant-size histogram (§2);
//!   collectors of different threads [`Collector::merge`] exactly.
//! * [`calibrate_tensor`] runs the search of §3–§6 for one [`SearchParams`] and returns the
//!   [`ActivationParams`] (range, scale, offset and the whole divergence curve). To run many
//!   parameter sets on the same tensor, build a [`TensorModel`] once and call [`calibrate_model`].
//! * [`divergence_curves`] gives the curves of all three divergence types at once.
//! * [`ActivationQuant`], [`weight_quant`], [`quantize_weights`] and [`quantize_bias`] implement §7.
//! * [`DisplayHistogram`] is the compact summary the UI draws and sessions store.
//!
//! Nothing here panics on input or prints; errors are [`CalibError`] values.

mod display;
mod divergence;
mod error;
mod histogram;
mod params;
mod qparams;
mod result;
mod search;
mod side;

#[cfg(test)]
mod spec_tests;

pub use display::{DISPLAY_BINS, DisplayHistogram};
pub use divergence::{EPS, PGrid, PqWorkspace, divergence, divergences, pq_for_range};
pub use error::CalibError;
pub use histogram::{Collector, RawHistogram, SIDE_BINS};
pub use params::{
    DEFAULT_BIN, DivergenceType, MAX_BIN, MAX_CANDIDATES, MIN_BIN, PERCENTILE_MID, QuantizeAlgo,
    SearchParams, WeightType,
};
pub use qparams::{
    ActivationQuant, WeightLayout, WeightQuant, bias_scales, quantize_bias, quantize_weights,
    weight_quant, weight_scales,
};
pub use result::{ActivationParams, AllCurves, CalibCase, CalibWarning};
pub use search::{
    Base, MAX_GRID_POINTS, PB, Prepared, QTOL, Search, SearchResult, TIE_ABS, TIE_REL,
    candidate_ratios, prepare, select,
};
pub use side::{Side, TensorModel, signed_cdf};

/// Calibrates one activation tensor from its collector (§3–§7). Errors: invalid `params`, no
/// finite value collected ([`CalibError::NoFiniteValues`]; the tensor stays float), or an absurd
/// P grid ([`CalibError::GridTooLarge`]).
pub fn calibrate_tensor(
    collector: &Collector,
    params: &SearchParams,
) -> Result<ActivationParams, CalibError> {
    calibrate_model(&TensorModel::new(collector), params)
}

/// [`calibrate_tensor`] on a prebuilt [`TensorModel`] (saves the O(side_bins) setup when many
/// parameter sets run on the same tensor).
pub fn calibrate_model(
    model: &TensorModel,
    params: &SearchParams,
) -> Result<ActivationParams, CalibError> {
    let prepared = prepare(model, params)?;
    let searched = match &prepared {
        Prepared::Search(s) => Some(s.run(params.divergence)),
        _ => None,
    };
    Ok(assemble(
        model,
        params,
        params.divergence,
        &prepared,
        searched,
    ))
}

/// [`calibrate_model`] for each divergence type of [`DivergenceType::ALL`] at once (the
/// `type` of `params` is ignored): one candidate construction serves all three curves.
pub fn calibrate_model_all_types(
    model: &TensorModel,
    params: &SearchParams,
) -> Result<[ActivationParams; 3], CalibError> {
    let prepared = prepare(model, params)?;
    let curves = match &prepared {
        Prepared::Search(s) => Some(s.curves()),
        _ => None,
    };
    Ok(DivergenceType::ALL.map(|kind| {
        let searched = match (&prepared, &curves) {
            (Prepared::Search(s), Some(c)) => Some(s.finish(c[kind.index()].clone())),
            _ => None,
        };
        assemble(model, params, kind, &prepared, searched)
    }))
}

/// The parameters of one tensor from a prepared search and its result.
fn assemble(
    model: &TensorModel,
    params: &SearchParams,
    kind: DivergenceType,
    prepared: &Prepared,
    searched: Option<SearchResult>,
) -> ActivationParams {
    let (case, lo, hi) = match (prepared, &searched) {
        (_, Some(r)) => {
            let (lo, hi) = r.range();
            (CalibCase::Searched, lo, hi)
        }
        (Prepared::SingleBin { lo, hi }, _) => (CalibCase::SingleBin, *lo, *hi),
        _ => (CalibCase::AllZero, 0.0, 0.0),
    };
    let q = ActivationQuant::from_range(params.algo, lo, hi);
    ActivationParams {
        algo: params.algo,
        divergence_type: kind,
        bin: params.effective_bin(),
        case,
        lo,
        hi,
        scale: q.scale,
        offset: q.offset,
        base: searched.as_ref().map(|r| r.base),
        ratio: searched.as_ref().map(SearchResult::ratio),
        chosen: searched.as_ref().map(|r| r.chosen),
        boundary_hit: searched.as_ref().is_some_and(SearchResult::boundary_hit),
        curve: searched.map_or_else(Vec::new, |r| {
            r.ratios.into_iter().zip(r.divergences).collect()
        }),
        nan_count: model.nan,
        inf_count: model.inf,
    }
}

/// The divergence curves of all three types for the candidates of `params` (its `type` is
/// ignored), or `None` when a degenerate case of §6 skips the search.
pub fn divergence_curves(
    collector: &Collector,
    params: &SearchParams,
) -> Result<Option<AllCurves>, CalibError> {
    let model = TensorModel::new(collector);
    Ok(match prepare(&model, params)? {
        Prepared::Search(s) => Some(AllCurves {
            ratios: s.ratios().to_vec(),
            ranges: s.ranges().to_vec(),
            curves: s.curves(),
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_types_at_once_equals_one_search_per_type() {
        let mut c = Collector::new();
        // A skewed, heavy-tailed batch: the three types choose differently.
        let data: Vec<f32> = (0..20_000)
            .map(|i| {
                let x = ((i * 7919) % 10_007) as f32 / 10_007.0;
                if i % 97 == 0 { 8.0 * x } else { x * x - 0.2 }
            })
            .collect();
        c.update(&data);
        let model = TensorModel::new(&c);
        for algo in [QuantizeAlgo::HalfOffset, QuantizeAlgo::NonOffset] {
            let base = SearchParams {
                algo,
                start_ratio: 0.3,
                end_ratio: 1.7,
                ..SearchParams::default()
            };
            let all = calibrate_model_all_types(&model, &base).unwrap();
            for kind in DivergenceType::ALL {
                let one = calibrate_model(
                    &model,
                    &SearchParams {
                        divergence: kind,
                        ..base
                    },
                )
                .unwrap();
                assert_eq!(all[kind.index()], one, "{kind:?}");
            }
        }
    }
}
