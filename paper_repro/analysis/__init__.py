"""Analysis of a study's results: reads parquet/json only (never torch or model code).

    load       load_results, load_manifests, METHOD_ORDER, METHOD_COLORS
    stats      mean_ci, paired_differences, holm, step_efficiency, per_type_table, budget_table, cost_table
    plots      one function per figure, make_all_figures (PNG + PDF)
    report     build_report / main: REPORT.md + figures/ + tables/
    notebooks  run_notebooks: the analysis/*.ipynb notebooks, headless
"""
