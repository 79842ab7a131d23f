use super::*;

fn cfg() -> SamplerConfig {
    SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        seed: 42,
    }
}

fn sampler(c: SamplerConfig) -> Sampler {
    Sampler::new(c).unwrap()
}

/// Natural-log logits of a probability vector (softmax inverts them).
fn ln(probs: &[f64]) -> Vec<f32> {
    probs.iter().map(|p| p.ln() as f32).collect()
}

fn counts(s: &mut Sampler, logits: &[f32], draws: usize) -> Vec<usize> {
    let mut n = vec![0usize; logits.len()];
    for _ in 0..draws {
        n[s.sample(logits, &[]) as usize] += 1;
    }
    n
}

/// Pearson chi-square of observed counts against expected probabilities.
fn chi_square(observed: &[usize], probs: &[f64]) -> f64 {
    let total: usize = observed.iter().sum();
    observed
        .iter()
        .zip(probs)
        .map(|(&o, &p)| {
            let e = p * total as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// chi-square 0.999 quantile for 3 degrees of freedom.
const CHI2_3DOF_999: f64 = 16.27;

#[test]
fn defaults_are_llama_cpp_cli_defaults() {
    let d = SamplerConfig::default();
    assert_eq!(
        (d.temperature, d.top_k, d.top_p, d.min_p),
        (0.8, 40, 0.95, 0.05)
    );
    assert_eq!((d.repeat_penalty, d.repeat_last_n), (1.0, 64));
    assert_eq!((d.presence_penalty, d.frequency_penalty), (0.0, 0.0));
    assert!(Sampler::new(d).is_ok());
}

#[test]
fn invalid_configs_rejected() {
    let bad = [
        SamplerConfig {
            temperature: f32::NAN,
            ..cfg()
        },
        SamplerConfig {
            temperature: -0.1,
            ..cfg()
        },
        SamplerConfig {
            temperature: f32::INFINITY,
            ..cfg()
        },
        SamplerConfig {
            top_p: 0.0,
            ..cfg()
        },
        SamplerConfig {
            top_p: 1.5,
            ..cfg()
        },
        SamplerConfig {
            top_p: f32::NAN,
            ..cfg()
        },
        SamplerConfig {
            min_p: -0.01,
            ..cfg()
        },
        SamplerConfig {
            min_p: 1.01,
            ..cfg()
        },
        SamplerConfig {
            min_p: f32::NAN,
            ..cfg()
        },
        SamplerConfig {
            repeat_penalty: 0.0,
            ..cfg()
        },
        SamplerConfig {
            repeat_penalty: f32::NAN,
            ..cfg()
        },
        SamplerConfig {
            presence_penalty: f32::INFINITY,
            ..cfg()
        },
        SamplerConfig {
            frequency_penalty: f32::NAN,
            ..cfg()
        },
    ];
    for c in bad {
        assert!(Sampler::new(c).is_err(), "{c:?} accepted");
    }
    let err = Sampler::new(SamplerConfig {
        top_p: 2.0,
        ..cfg()
    })
    .unwrap_err();
    assert!(err.to_string().contains("top_p"), "{err}");
    assert!(Sampler::new(SamplerConfig {
        temperature: 0.0,
        min_p: 1.0,
        ..cfg()
    })
    .is_ok());
}

#[test]
fn greedy_is_argmax_lowest_id_on_ties() {
    let mut s = sampler(SamplerConfig {
        temperature: 0.0,
        ..cfg()
    });
    assert_eq!(s.sample(&[0.1, 2.0, -3.0, 1.9], &[]), 1);
    assert_eq!(s.sample(&[0.5, 3.0, 3.0, 1.0], &[]), 1);
    assert_eq!(s.sample(&[f32::NAN, -1.0, f32::NAN], &[]), 1);
    assert_eq!(s.sample(&[f32::NAN, f32::NAN], &[]), 0);
    assert_eq!(s.sample(&[], &[]), 0);
    assert_eq!(s.sample(&[-1.0, f32::INFINITY, f32::INFINITY], &[]), 1);
}

#[test]
fn greedy_sees_penalties() {
    let c = SamplerConfig {
        temperature: 0.0,
        repeat_penalty: 2.0,
        ..cfg()
    };
    let mut s = sampler(c);
    // 2.0 / 2 = 1.0 < 1.5: the repeated token loses its lead.
    assert_eq!(s.sample(&[2.0, 1.5], &[0]), 1);
    assert_eq!(s.sample(&[2.0, 1.5], &[]), 0);
}

#[test]
fn top_k_one_and_tiny_top_p_are_greedy() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut greedy = sampler(SamplerConfig {
        temperature: 0.0,
        ..cfg()
    });
    let mut k1 = sampler(SamplerConfig { top_k: 1, ..cfg() });
    let mut p0 = sampler(SamplerConfig {
        top_p: 1e-6,
        ..cfg()
    });
    for round in 0..200 {
        let n = 1 + round % 700;
        let mut logits: Vec<f32> = (0..n).map(|_| rng.random_range(-5.0f32..5.0)).collect();
        if round % 3 == 0 && n > 2 {
            // Exact tie for the top: lowest id must win everywhere.
            let m = logits.iter().copied().fold(f32::MIN, f32::max);
            logits[n - 1] = m;
        }
        let want = greedy.sample(&logits, &[]);
        assert_eq!(k1.sample(&logits, &[]), want, "top_k=1, n={n}");
        assert_eq!(p0.sample(&logits, &[]), want, "top_p tiny, n={n}");
    }
}

#[test]
fn same_seed_same_tokens_different_seed_different() {
    let logits = ln(&[0.1, 0.2, 0.3, 0.25, 0.15]);
    let run = |seed| {
        let mut s = sampler(SamplerConfig { seed, ..cfg() });
        (0..500)
            .map(|_| s.sample(&logits, &[]))
            .collect::<Vec<u32>>()
    };
    assert_eq!(run(1), run(1));
    let (a, b) = (run(1), run(2));
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    // Independent draws agree with probability sum(p^2) = 0.225.
    assert!(same < 200, "seeds 1 and 2 agree on {same}/500 draws");
}

#[test]
fn draws_match_known_distribution() {
    let probs = [0.1, 0.2, 0.3, 0.4];
    let mut s = sampler(cfg());
    let n = counts(&mut s, &ln(&probs), 20_000);
    let chi = chi_square(&n, &probs);
    assert!(chi < CHI2_3DOF_999, "chi2 {chi} counts {n:?}");
}

#[test]
fn temperature_reshapes_distribution() {
    let probs = [0.1, 0.2, 0.3, 0.4];
    let logits = ln(&probs);
    // softmax(ln p / T) = p^(1/T) / sum: computed here in f64.
    let expect = |t: f64| {
        let w: Vec<f64> = probs.iter().map(|p: &f64| p.powf(1.0 / t)).collect();
        let z: f64 = w.iter().sum();
        w.iter().map(|x| x / z).collect::<Vec<f64>>()
    };
    let base = counts(&mut sampler(cfg()), &logits, 20_000);
    let sharp = counts(
        &mut sampler(SamplerConfig {
            temperature: 0.5,
            ..cfg()
        }),
        &logits,
        20_000,
    );
    let flat = counts(
        &mut sampler(SamplerConfig {
            temperature: 2.0,
            ..cfg()
        }),
        &logits,
        20_000,
    );
    assert!(
        sharp[3] > base[3] + 1000 && sharp[0] < base[0],
        "{sharp:?} vs {base:?}"
    );
    assert!(
        flat[3] < base[3] - 1000 && flat[0] > base[0],
        "{flat:?} vs {base:?}"
    );
    assert!(
        chi_square(&sharp, &expect(0.5)) < CHI2_3DOF_999,
        "{sharp:?}"
    );
    assert!(chi_square(&flat, &expect(2.0)) < CHI2_3DOF_999, "{flat:?}");
}

#[test]
fn min_p_never_draws_below_threshold() {
    // min_p 0.1 of p_max 0.5 = 0.05: tokens 3 (0.04) and 4 (0.01) are out.
    let probs = [0.5, 0.3, 0.15, 0.04, 0.01];
    let mut s = sampler(SamplerConfig {
        min_p: 0.1,
        ..cfg()
    });
    let n = counts(&mut s, &ln(&probs), 10_000);
    assert_eq!((n[3], n[4]), (0, 0), "{n:?}");
    // The survivors keep their relative odds: 0.5/0.95 etc.
    let kept = [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95];
    let chi = chi_square(&n[..3], &kept);
    assert!(chi < 13.8, "chi2(2 dof) {chi}, {n:?}"); // 0.999 quantile
                                                     // Without min_p the rare tokens do appear.
    let n = counts(&mut sampler(cfg()), &ln(&probs), 10_000);
    assert!(n[3] > 250 && n[4] > 50, "{n:?}");
}

#[test]
fn top_p_and_top_k_restrict_support() {
    let probs = [0.15, 0.5, 0.05, 0.3];
    let logits = ln(&probs);
    // top_p 0.75: 0.5 < 0.75 <= 0.8, so ids 1 and 3 remain (5:3 odds).
    let n = counts(
        &mut sampler(SamplerConfig {
            top_p: 0.75,
            ..cfg()
        }),
        &logits,
        10_000,
    );
    assert_eq!((n[0], n[2]), (0, 0), "{n:?}");
    let share = n[1] as f64 / 10_000.0;
    assert!((share - 0.625).abs() < 0.03, "{n:?}");
    let n = counts(
        &mut sampler(SamplerConfig { top_k: 2, ..cfg() }),
        &logits,
        10_000,
    );
    assert_eq!((n[0], n[2]), (0, 0), "{n:?}");
    // top_k then top_p renormalises over the k: 0.5/0.8 = 0.625 >= 0.6.
    let c = SamplerConfig {
        top_k: 2,
        top_p: 0.6,
        ..cfg()
    };
    let n = counts(&mut sampler(c), &logits, 2_000);
    assert_eq!(n[1], 2_000, "{n:?}");
}

/// Large unsorted vocabulary: the lazy partial sort in top-p must give
/// the same support as a full sort.
#[test]
fn top_p_partial_sort_matches_full_sort() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &p in &[0.05f32, 0.5, 0.9, 0.999] {
        let logits: Vec<f32> = (0..5000).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let mut cands: Vec<Candidate> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
            })
            .collect();
        truncate_top_p(&mut cands, p, false);
        // Reference: full sort, f64 softmax, smallest prefix reaching p.
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let m = logits[idx[0]];
        let z: f64 = logits.iter().map(|&l| f64::from((l - m).exp())).sum();
        let mut cum = 0.0;
        let mut keep = idx.len();
        for (i, &j) in idx.iter().enumerate() {
            cum += f64::from((logits[j] - m).exp()) / z;
            if cum >= f64::from(p) {
                keep = i + 1;
                break;
            }
        }
        let got: Vec<u32> = cands.iter().map(|c| c.id).collect();
        let want: Vec<u32> = idx[..keep].iter().map(|&j| j as u32).collect();
        assert_eq!(got, want, "top_p {p}");
    }
}

/// Hand-computed: window = last 5 of [2, 3, 1, 3, 3, 0, 9] = [1, 3, 3, 0, 9]
/// (9 is outside the 5-token vocabulary); counts 0:1, 1:1, 3:2.
/// repeat 1.5, frequency 0.25, presence 0.5:
///   id0:  2.0 / 1.5 - (1*0.25 + 0.5) = 0.583333
///   id1: -1.0 * 1.5 - (1*0.25 + 0.5) = -2.25
///   id2:  0.5 (only before the window)
///   id3:  3.0 / 1.5 - (2*0.25 + 0.5) = 1.0
///   id4:  0.0 (never seen)
#[test]
fn penalties_hand_computed() {
    let c = SamplerConfig {
        repeat_penalty: 1.5,
        frequency_penalty: 0.25,
        presence_penalty: 0.5,
        repeat_last_n: 5,
        ..cfg()
    };
    let logits = [2.0f32, -1.0, 0.5, 3.0, 0.0];
    let history = [2u32, 3, 1, 3, 3, 0, 9];
    let mut cands: Vec<Candidate> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| Candidate {
            id: i as u32,
            logit: l,
        })
        .collect();
    let window = &history[history.len() - 5..];
    apply_penalties(&mut cands, window, &c, &mut Vec::new());
    let got: Vec<f32> = cands.iter().map(|c| c.logit).collect();
    let want = [0.583_333_3f32, -2.25, 0.5, 1.0, 0.0];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    // A zero logit in the window is multiplied (stays 0), then shifted.
    let mut z = vec![Candidate { id: 0, logit: 0.0 }];
    apply_penalties(&mut z, &[0, 0], &c, &mut Vec::new());
    assert_eq!(z[0].logit, -(2.0 * 0.25 + 0.5));
    // repeat_last_n = 0 disables everything, as in llama.cpp.
    let off = SamplerConfig {
        repeat_last_n: 0,
        ..c
    };
    let mut z = vec![Candidate { id: 0, logit: 2.0 }];
    apply_penalties(&mut z, &[0], &off, &mut Vec::new());
    assert_eq!(z[0].logit, 2.0);
}

/// `sample` takes the window from the end of the history.
#[test]
fn sample_uses_last_n_of_history() {
    let c = SamplerConfig {
        temperature: 0.0,
        repeat_penalty: 10.0,
        repeat_last_n: 2,
        ..cfg()
    };
    let mut s = sampler(c);
    let logits = [3.0f32, 2.0, 1.0];
    assert_eq!(s.sample(&logits, &[0, 2, 2]), 0); // 0 is outside the window
    assert_eq!(s.sample(&logits, &[2, 0]), 1);
    assert_eq!(s.sample(&logits, &[0, 1]), 2);
}

#[test]
fn nan_and_infinite_logits_do_not_panic() {
    let mut s = sampler(SamplerConfig::default());
    let logits = [f32::NAN, 1.0, f32::NAN, 0.5];
    for _ in 0..2000 {
        let t = s.sample(&logits, &[1, 1, 3]);
        assert!(t == 1 || t == 3, "picked NaN token {t}");
    }
    let mut s = sampler(cfg());
    assert_eq!(s.sample(&[f32::NAN; 4], &[]), 0);
    assert_eq!(s.sample(&[f32::NEG_INFINITY, f32::NEG_INFINITY], &[]), 0);
    assert_eq!(s.sample(&[0.0, f32::INFINITY, 1.0], &[]), 1);
    let mut s = sampler(SamplerConfig {
        temperature: 1e-30,
        ..cfg()
    });
    assert_eq!(s.sample(&[0.0, 1.0, 0.999_999], &[]), 1);
}

#[test]
fn buffers_are_reused() {
    let mut s = sampler(SamplerConfig {
        repeat_penalty: 1.1,
        ..SamplerConfig::default()
    });
    let logits: Vec<f32> = (0..10_000).map(|i| (i % 97) as f32 * 0.01).collect();
    let history: Vec<u32> = (0..200).collect();
    s.sample(&logits, &history);
    let caps = (s.candidates.capacity(), s.window.capacity());
    for _ in 0..20 {
        s.sample(&logits, &history);
    }
    assert_eq!((s.candidates.capacity(), s.window.capacity()), caps);
}
