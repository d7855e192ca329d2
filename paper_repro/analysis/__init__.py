"""Analysis of a study's results: reads parquet, json, YAML and CSV only (never torch or model code).

    load        load_results (v1 tables upgraded), load_manifests, select_stage, has_v1, METHOD_ORDER, METHOD_COLORS
    stats       mean_ci, paired_differences (t-interval < 10 pairs, else bootstrap), pair_differences, holm,
                step_efficiency (fixed targets, censored), per_type_table, budget_table, cost_table
    hypotheses  the study YAML's pre-registered tests: sign-flip permutation p, Holm across the block, verdicts
    verdicts    the study YAML's pre-registered `claims:`: a verdict per paper claim from the hypotheses' outputs
    lr_sensitivity  post hoc: each arm's dev/test F1 across the tuned lr grid, selected vs best lr, sign flips
    plots       one function per figure, make_all_figures (PNG + PDF)
    report      build_report / main: REPORT.md + figures/ + tables/
    notebooks   run_notebooks: the analysis/*.ipynb notebooks, headless
"""
