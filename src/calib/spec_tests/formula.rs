//! §9-F and §9-G: searches on formula histograms at the full 8192 side bins.

use super::*;

/// §9-F: `c_b = floor(2e6·exp(−(b+0.5)/300))`, c_6000 += 5, c_8000 += 2, 1e6 zeros, max 7.813.
pub(super) fn formula_f() -> Collector {
    let mut pos: Vec<u64> = (0..8192)
        .map(|b| (2e6 * (-(b as f64 + 0.5) / 300.0).exp()).floor() as u64)
        .collect();
    pos[6000] += 5;
    pos[8000] += 2;
    assert_eq!(pos.iter().sum::<u64>(), 599_997_301, "formula counts");
    let c = collector(pos, vec![0; 8192], 8.0, 1_000_000, 0.0, 7.813);
    assert_eq!(c.count(), 600_997_301);
    c
}

/// KL, bin 150, p = 0.99999 on the §9-F histogram: the full curve over 0.7..1.3.
#[rustfmt::skip]
const F_KL150: [f64; 61] = [
    0.0015818423931598712, 0.0014232796180945937, 0.0012829969897296197, 0.0011580537282337754,
    0.0010469808790244054, 0.0009690053733708179, 0.0008606804877537648, 0.0007831359651752178,
    0.0007143421895343096, 0.000653135428709652, 0.0006000060909459741, 0.0005521988485484441,
    0.0005092891214370151, 0.00047196878472835263, 0.0004393722887796554, 0.00041157538550633005,
    0.0003855886645357507, 0.00036381009007408556, 0.0003446241295704975, 0.00032796569476435525,
    0.0003146198742002877, 0.00030141721251411753, 0.00029102748967644015, 0.0002823274002887607,
    0.0002759826049508694, 0.0002698248923670074, 0.0002640099916360017, 0.000260460941989088,
    0.00025742718281279145, 0.00025540468070679766, 0.00028209662269564257, 0.00025349849816050124,
    0.0002536162778722929, 0.0002541787206927267, 0.00025523959426095705, 0.00025793052333017067,
    0.00026063452544171286, 0.0002611902090014604, 0.00026367179021174336, 0.0002666538130602157,
    0.0002710758753769168, 0.00027361648963684676, 0.0002777277804903774, 0.0002814047196349885,
    0.0002853454344173287, 0.00029054984867942125, 0.0002940836079156079, 0.000298556761138727,
    0.0003034083439723077, 0.0003104677155755998, 0.00031442997540393917, 0.00031819032249258167,
    0.000324154802534805, 0.0003291375931410203, 0.000334380762373203, 0.00037517048974435534,
    0.00034537223410120493, 0.0003511258474791894, 0.0003574149092514903, 0.0003626471647000922,
    0.0003699426197692095,
];

/// §9-F: defaults on the formula histogram. p = 1 picks r = 0.70 everywhere (boundary warning);
/// p = 0.99999 gives the 3×3 table; the wide search still picks r = 1.01.
#[test]
fn spec_f_defaults_on_formula_histogram() {
    let c = formula_f();
    let model = TensorModel::new(&c);
    let non = QuantizeAlgo::NonOffset;
    let p1_d = [
        // (kind, bin, divergence at r = 0.70)
        (DivergenceType::Kl, 100, 0.0012158776671748032),
        (DivergenceType::Kl, 150, 0.0005399521719080704),
        (DivergenceType::Kl, 250, 0.00019432965607533504),
        (DivergenceType::SymKl, 100, 0.0024324588023805107),
        (DivergenceType::SymKl, 150, 0.0010800184048855464),
        (DivergenceType::SymKl, 250, 0.0003886452485103199),
        (DivergenceType::Jsd, 100, 0.00030399811491757376),
        (DivergenceType::Jsd, 150, 0.00013498812074574836),
        (DivergenceType::Jsd, 250, 4.857609126678253e-05),
    ];
    for (kind, bin, d) in p1_d {
        let r = calibrate_model(&model, &params(non, kind, bin, 1.0)).unwrap();
        let what = format!("p=1 {kind} bin={bin}");
        assert_eq!(r.base, Some(Base::Symmetric(7.813)), "{what}");
        assert_eq!((r.chosen, r.ratio), (Some(0), Some(0.7)), "{what}");
        assert_rel(r.hi, 5.469099999999999, 1e-9, &what);
        assert_rel(r.divergence().unwrap(), d, 1e-6, &what);
        assert_eq!(r.scale, 0.043063778430223465f64 as f32, "{what}");
        assert!(r.boundary_hit, "{what}");
        assert_eq!(
            r.warnings(),
            [CalibWarning::BoundaryHit {
                index: 0,
                count: 61
            }],
            "{what}"
        );
    }
    let table = [
        // (kind, bin, index, T, d, scale)
        (
            DivergenceType::Kl,
            100,
            23,
            3.1049411887750993,
            0.0004996167403881209,
            0.02444835565984249,
        ),
        (
            DivergenceType::Kl,
            150,
            31,
            3.372032903938549,
            0.00025349849816050124,
            0.026551440358161926,
        ),
        (
            DivergenceType::Kl,
            250,
            39,
            3.639124619101998,
            0.00010555494277469207,
            0.02865452505648136,
        ),
        (
            DivergenceType::SymKl,
            100,
            21,
            3.038168259984237,
            0.0009223146044867177,
            0.02392258495092392,
        ),
        (
            DivergenceType::SymKl,
            150,
            28,
            3.2718735107522554,
            0.00047258002697637443,
            0.025762783363461494,
        ),
        (
            DivergenceType::SymKl,
            250,
            37,
            3.572351690311135,
            0.00019863739357016305,
            0.02812875434756279,
        ),
        (
            DivergenceType::Jsd,
            100,
            16,
            2.8712359380070813,
            0.00010388111254383257,
            0.022608157247304916,
        ),
        (
            DivergenceType::Jsd,
            150,
            22,
            3.071554724379668,
            5.309532460609858e-05,
            0.02418546937406063,
        ),
        (
            DivergenceType::Jsd,
            250,
            31,
            3.372032903938549,
            2.24264174816795e-05,
            0.026551440358161926,
        ),
    ];
    for (kind, bin, idx, t, d, scale) in table {
        let r = calibrate_model(&model, &params(non, kind, bin, 0.99999)).unwrap();
        let what = format!("p=0.99999 {kind} bin={bin}");
        let Some(Base::Symmetric(b)) = r.base else {
            panic!("{what}: symmetric base expected");
        };
        assert_rel(b, 3.3386464395431177, 1e-9, "base");
        assert_eq!(r.chosen, Some(idx), "{what}");
        assert_rel(r.hi, t, 1e-9, &what);
        assert_rel(r.divergence().unwrap(), d, 1e-6, &what);
        assert_eq!(r.scale, scale as f32, "{what}");
        assert!(!r.boundary_hit && r.warnings().is_empty(), "{what}");
        if (kind, bin) == (DivergenceType::Kl, 150) {
            assert_curve(&r.curve, &F_KL150, &what);
        }
    }
    let wide = SearchParams {
        start_ratio: 0.3,
        end_ratio: 1.7,
        ..params(non, DivergenceType::Kl, 150, 0.99999)
    };
    let r = calibrate_model(&model, &wide).unwrap();
    assert_eq!((r.chosen, r.curve.len()), (Some(71), 141));
    assert_rel(r.ratio.unwrap(), 1.01, 1e-12, "ratio");
    assert_rel(r.hi, 3.372032903938549, 1e-9, "wide T");
}

/// §9-G histograms (GELU-like): pos_b = floor(1e6·exp(−(b+0.5)/200)),
/// neg_b = floor(2e5·exp(−(b+0.5)/50)) for b < 200; 50 000 zeros.
pub(super) fn formula_g() -> Collector {
    let pos: Vec<u64> = (0..8192)
        .map(|b| (1e6 * (-(b as f64 + 0.5) / 200.0).exp()).floor() as u64)
        .collect();
    let neg: Vec<u64> = (0..8192)
        .map(|b| {
            if b < 200 {
                (2e5 * (-(b as f64 + 0.5) / 50.0).exp()).floor() as u64
            } else {
                0
            }
        })
        .collect();
    assert_eq!(pos.iter().sum::<u64>(), 199_998_200, "formula pos");
    assert_eq!(neg.iter().sum::<u64>(), 9_816_577, "formula neg");
    assert_eq!(pos.iter().rposition(|&x| x > 0), Some(2762));
    let w = 1.0 / 1024.0;
    let c = collector(pos, neg, 8.0, 50_000, -199.5 * w, 2762.5 * w);
    assert_eq!(c.count(), 209_864_777);
    assert_eq!(
        (c.min(), c.max()),
        (Some(-0.19482421875), Some(2.69775390625))
    );
    c
}

/// JSD, p = 0.99999, HALF_OFFSET on the §9-G histograms: the full curve over 0.7..1.3
/// (the flat tail is the clamped candidates).
#[rustfmt::skip]
const G_JSD: [f64; 61] = [
    0.0008639055677177954, 0.0008222648299466939, 0.0007840970940193055, 0.0007482606434500467,
    0.000715634405538082, 0.000700086868829886, 0.0005699372504829932, 0.0005410090013665044,
    0.0005139402142617616, 0.00048776762741023705, 0.00046380306111196406, 0.0004424187709933562,
    0.00041882750829414265, 0.0003981079712909696, 0.00037885153339690687, 0.0003610997540838117,
    0.00034408112780134675, 0.0003296728616386624, 0.00026744770550668115, 0.00025200680511821687,
    0.00023818477125766476, 0.00022441658226993514, 0.0002116373061282764, 0.00019997614982210658,
    0.0001904064437158057, 0.0001773963340007097, 0.00016653030030924654, 0.00015715245211652995,
    0.00014742239166737879, 0.000138671595060063, 0.00013088650702748953, 0.00011324095865040826,
    0.00011260806669674644, 0.00011683753792714122, 0.00011843604299901012, 0.00012034973479690336,
    0.00012281531671699857, 0.00016831802228364773, 0.00014719175858991356, 0.00014504424361906905,
    0.00014338546125049754, 0.00013224987446386994, 0.00013210892804548012, 0.00013842075575051698,
    0.00014122544880373493, 0.00014144569218323166, 0.00014358938588650877, 0.00014910978569411456,
    0.0001909887467202715, 0.00017729660547729714, 0.00018114418500542954, 0.0001680781988088143,
    0.00016713910666252233, 0.00016828453935324185, 0.00016828453935324185, 0.00016828453935324185,
    0.00016828453935324185, 0.00016828453935324185, 0.00016828453935324185, 0.00016828453935324185,
    0.00016828453935324185,
];

/// §9-G: HALF_OFFSET table (tie at the clamped candidates, zero point 17/20) and the NON_OFFSET
/// line on the same data.
#[test]
fn spec_g_half_offset() {
    let c = formula_g();
    let model = TensorModel::new(&c);
    let half = QuantizeAlgo::HalfOffset;
    let rows = [
        // (p, kind, index, lo, hi, scale, offset, d)
        (
            1.0,
            DivergenceType::Kl,
            30,
            -0.19482421875,
            2.69775390625,
            0.011343443766236305,
            -17,
            0.0007072895093012472,
        ),
        (
            1.0,
            DivergenceType::SymKl,
            29,
            -0.1928759765625,
            2.6707763671875,
            0.011230009607970715,
            -17,
            0.0013640180283835237,
        ),
        (
            1.0,
            DivergenceType::Jsd,
            29,
            -0.1928759765625,
            2.6707763671875,
            0.011230009607970715,
            -17,
            0.00016734922850818092,
        ),
        (
            0.99999,
            DivergenceType::Kl,
            32,
            -0.19482421875,
            2.24630365190509,
            0.009573050774633884,
            -20,
            0.0004721177913233008,
        ),
        (
            0.99999,
            DivergenceType::SymKl,
            32,
            -0.19482421875,
            2.24630365190509,
            0.009573050774633884,
            -20,
            0.0009217204254541966,
        ),
        (
            0.99999,
            DivergenceType::Jsd,
            32,
            -0.19482421875,
            2.24630365190509,
            0.009573050774633884,
            -20,
            0.00011260806669674644,
        ),
    ];
    for (p, kind, idx, lo, hi, scale, offset, d) in rows {
        let r = calibrate_model(&model, &params(half, kind, 150, p)).unwrap();
        let what = format!("p={p} {kind}");
        assert_eq!(r.chosen, Some(idx), "{what}");
        assert_rel(r.lo, lo, 1e-9, &what);
        assert_rel(r.hi, hi, 1e-9, &what);
        assert_eq!(r.scale, scale as f32, "{what}");
        assert_eq!((r.offset, r.zero_point()), (offset, -offset), "{what}");
        assert_rel(r.divergence().unwrap(), d, 1e-6, &what);
        let Some(Base::Asymmetric { min, max }) = r.base else {
            panic!("{what}: asymmetric base expected");
        };
        if p == 1.0 {
            assert_eq!((min, max), (-0.19482421875, 2.69775390625));
        } else {
            assert_rel(min, -0.1945471897269017, 1e-9, "bmin");
            assert_rel(max, 2.202258482259892, 1e-9, "bmax");
        }
        if p == 1.0 && kind == DivergenceType::Kl {
            // r ≥ 1 are all clamped to [vmin, vmax] and tie; ratio 1.00 is kept
            assert_eq!(r.ratio, Some(1.0));
            assert!(r.curve[30..].iter().all(|&(_, d)| d == r.curve[30].1));
        }
        if p != 1.0 && kind == DivergenceType::Jsd {
            assert_curve(&r.curve, &G_JSD, &what);
        }
    }
    let r = calibrate_model(
        &model,
        &params(QuantizeAlgo::NonOffset, DivergenceType::Kl, 150, 0.99999),
    )
    .unwrap();
    let Some(Base::Symmetric(b)) = r.base else {
        panic!("symmetric base expected");
    };
    assert_rel(b, 2.202258482259892, 1e-9, "NON_OFFSET base");
    assert_eq!(r.chosen, Some(31));
    assert_rel(r.hi, 2.224281067082491, 1e-9, "NON_OFFSET T");
    assert_eq!(r.scale, 0.017514023929834366f64 as f32);
    assert_rel(
        r.divergence().unwrap(),
        0.00031806081426484777,
        1e-6,
        "NON_OFFSET d",
    );
}
