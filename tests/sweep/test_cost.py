"""The cost estimate of cells still to run: a per-method fit of time against the step budget, priced at each
pending cell's budget from the step rule; the fallbacks are named in the text."""
from __future__ import annotations

import pytest
from sweep_helpers import fake_rows

from paper_repro.config import CellConfig, apply_overrides
from paper_repro.results import store
from paper_repro.results.schema import cell_table
from paper_repro.sweep import cost


def cell(tmp_path, method="last", size=100, backbone="minilm-l6", seed=0) -> CellConfig:
    return apply_overrides(CellConfig(), {"results_dir": str(tmp_path), "study": "st", "model.backbone": backbone,
                                          "model.head.name": method, "data.size": size, "train.seed": seed})


def done(config: CellConfig, total_s: float, steps: int, windows: int, cpu_s: float | None = None,
         device: str = "cpu:x86_64 threads=1 x1") -> CellConfig:
    timings = {"total_s": total_s} if cpu_s is None else {"total_s": total_s, "cpu_s": cpu_s}
    manifest = {"config": config.to_dict(), "timings": timings, "device": device,
                "steps": {"total": steps, "train_windows": windows}, "data": {"train": {"sentences": 4000}}}
    store.write_cell(config.results_dir, config.study, config.run_id, cell_table(fake_rows(config)), manifest)
    return config


def test_fit_is_least_squares_or_the_mean_time_per_step():
    assert cost.fit([(200, 60.0), (1250, 270.0)]) == pytest.approx((20.0, 0.2))
    assert cost.fit([(200, 50.0), (200, 70.0)]) == pytest.approx((0.0, 0.3))
    # a negative fixed part (noise) is not extrapolated: time per step instead
    assert cost.fit([(100, 10.0), (200, 40.0)]) == pytest.approx((0.0, (0.1 + 0.2) / 2))


def test_pending_cells_are_priced_at_their_step_budget(tmp_path):
    # min_epochs 5, batch 8, floor 200 steps: 100 windows -> 200 steps; 1000 -> 625; 2000 -> 1250
    done(cell(tmp_path, size=100), 60.0, 200, 100)
    done(cell(tmp_path, size=2000), 270.0, 1250, 2000)
    pool = cost.timed_cells(tmp_path / "st")
    one = cost.estimate(pool, [cell(tmp_path, size=1000, seed=1)])
    assert one.seconds == pytest.approx(20.0 + 0.2 * 625) and one.by_steps == 1 and one.timed == 2  # (mean: 165)
    # a head with no done cell: its backbone's fit (every method); at a size seen before, that size's windows
    other = cost.estimate(pool, [cell(tmp_path, method="dwatt", size=100)])
    assert other.seconds == pytest.approx(60.0) and other.by_backbone == 1
    # a backbone with no done cell and no config to be had: unpriced (never another backbone's mean), and named
    unknown = cost.estimate(pool, [cell(tmp_path, backbone="/nonexistent/encoder")])
    assert unknown.seconds == 0.0 and unknown.unpriced == 1 and unknown.unpriced_backbones == ("/nonexistent/encoder",)
    assert unknown.describe().startswith("estimated cost: unknown for 1 cells (1 cell(s) unpriced, of backbone(s) "
                                         "/nonexistent/encoder: no done cell of theirs prices them")
    both = cost.estimate(pool, [cell(tmp_path, backbone="/nonexistent/encoder"), cell(tmp_path, size=1000, seed=1)])
    assert both.seconds == pytest.approx(20.0 + 0.2 * 625) and both.by_steps == 1 and both.unpriced == 1
    assert both.describe().startswith("estimated cost: at least 2.4min compute for 1 cells (1 from their method's")
    assert "; 1 cell(s) unpriced, of backbone(s) /nonexistent/encoder: no done" in both.describe()
    # the whole training split (4000 sentences in the manifests, one window each): min_epochs 5 -> 2500 steps
    full = cost.estimate(pool, [apply_overrides(cell(tmp_path), {"data.sampler": "full"})])
    assert full.seconds == pytest.approx(20.0 + 0.2 * 2500) and full.by_steps == 1
    assert cost.estimate([], [cell(tmp_path)]).describe() == \
        "estimated cost: unknown for 1 cells (no done cell with recorded timings)"
    assert cost.estimate(pool, []).describe() == "estimated cost: nothing to run"


def test_cpu_time_is_priced_from_the_cells_that_recorded_it(tmp_path):
    """Wall time at the load a cell ran under and its process's CPU time: the same model fitted to each; cells
    written before CPU time was recorded price the wall estimate only, and the text says on how many cells each
    rests."""
    done(cell(tmp_path, size=100), 600.0, 200, 100)                    # an old cell: wall only (a loaded machine)
    done(cell(tmp_path, size=100, seed=1), 300.0, 200, 100, cpu_s=50.0)
    done(cell(tmp_path, size=2000), 1000.0, 1250, 2000, cpu_s=260.0)
    pool = cost.timed_cells(tmp_path / "st")
    todo = [cell(tmp_path, size=1000, seed=2)]                         # 625 steps (min_epochs 5, batch 8)
    cpu = cost.cpu_estimate(pool, todo)
    assert cpu.timed == 2 and cpu.seconds == pytest.approx(10.0 + 0.2 * 625)   # fit: 10 s + 0.2 s per step
    assert cost.estimate(pool, todo).timed == 3
    text = cost.describe_both(pool, todo)
    assert text.startswith("estimated cost: ") and "; in CPU time 2.2min (the same model on the 2 done cells" in text   # 135 s
    assert cost.cpu_estimate([t for t in pool if t.cpu_s is None], todo) is None
    # an unpriced cell (a backbone with nothing to price it): both totals say "at least" and count it
    text = cost.describe_both(pool, [*todo, cell(tmp_path, backbone="/nonexistent/encoder")])
    assert "estimated cost: at least " in text and "; in CPU time at least 2.2min (" in text
    assert text.endswith("; 1 cell(s) unpriced)")
    assert "CPU time" not in cost.describe_both([t for t in pool if t.cpu_s is None], todo)


def test_a_backbone_without_done_cells_is_priced_by_the_encoders_flops(tmp_path, tiny_backbone_dir):
    """MiniLM-L6's cells price a cell of another encoder (here the tests' tiny 2-layer BERT, a local folder) at its
    own step budget, scaled by L x (4 H^2 + 2 H I) of the two configs."""
    from paper_repro.models.backbone import load_backbone_config

    done(cell(tmp_path, size=100), 60.0, 200, 100)
    done(cell(tmp_path, size=2000), 270.0, 1250, 2000)
    pool = cost.timed_cells(tmp_path / "st")
    assert cost.encoder_flops("minilm-l6") == 6 * (4 * 384 ** 2 + 2 * 384 * 1536)   # the packaged MiniLM's config
    tiny = load_backbone_config(str(tiny_backbone_dir))
    ratio = (tiny.num_hidden_layers * (4 * tiny.hidden_size ** 2 + 2 * tiny.hidden_size * tiny.intermediate_size)
             / cost.encoder_flops("minilm-l6"))
    scaled = cost.estimate(pool, [cell(tmp_path, size=1000, backbone=str(tiny_backbone_dir))])
    assert scaled.by_scaled == 1 and scaled.seconds == pytest.approx((20.0 + 0.2 * 625) * ratio)
    assert "1 from another backbone's fit scaled by the encoders' FLOPs" in scaled.describe()
    # a head without cells on the other backbone: that backbone's fit over every method, scaled the same way
    other_head = cost.estimate(pool, [cell(tmp_path, method="dwatt", size=1000, backbone=str(tiny_backbone_dir))])
    assert other_head.by_scaled == 1 and other_head.seconds == pytest.approx((20.0 + 0.2 * 625) * ratio)
    # a frozen cell is not priced from full fine-tuning cells
    frozen = apply_overrides(cell(tmp_path, size=1000, backbone=str(tiny_backbone_dir)), {"model.finetune": "frozen"})
    assert cost.estimate(pool, [frozen]).by_scaled == 0


def test_an_encoder_without_its_config_is_priced_from_its_recorded_shape_or_not_at_all(tmp_path, tiny_backbone_dir):
    """The defect this guards: on a machine without the MPNet parts, MPNet's frozen heads were priced at its cheap
    `last` cells and its fine-tuning cells at MiniLM's mean (the study's total read 103 h, not 227 h). Now an encoder
    whose config is not on disk is scaled by the shape its done cells recorded (`backbone.shape` in every manifest);
    with no shape anywhere its cells are unpriced, whatever else is done."""
    from paper_repro.models.backbone import encoder_shape, load_backbone_config

    def frozen(method, size, backbone="minilm-l6", seed=0):
        return apply_overrides(cell(tmp_path, method, size, backbone, seed), {"model.finetune": "frozen"})

    def done_shaped(config, total_s, steps, windows, shape):
        manifest = {"config": config.to_dict(), "timings": {"total_s": total_s}, "backbone": {"shape": shape},
                    "steps": {"total": steps, "train_windows": windows}, "data": {"train": {"sentences": 4000}}}
        store.write_cell(config.results_dir, config.study, config.run_id, cell_table(fake_rows(config)), manifest)

    gone = str(tmp_path / "uninstalled-encoder")            # a backbone whose config is not on this machine
    tiny = encoder_shape(load_backbone_config(str(tiny_backbone_dir)))
    done(frozen("dwatt", 100), 20.0, 200, 100)
    done(frozen("dwatt", 2000), 62.0, 1250, 2000)            # MiniLM's dwatt: 12 s + 0.04 s per step
    done(frozen("last", 100, gone), 1.0, 200, 100)           # the uninstalled encoder's only cells: `last`, no shape
    pool = cost.timed_cells(tmp_path / "st")
    assert cost.recorded_shapes(pool) == {}
    todo = [frozen("dwatt", 1000, gone, seed=1), cell(tmp_path, "dwatt", 1000, gone, seed=1)]
    before = cost.prices(pool, todo)
    assert before == [(None, "unpriced"), (None, "unpriced")]     # not `last`'s 1 s, not MiniLM's mean
    assert cost.estimate(pool, todo).unpriced_backbones == (gone,)
    # one of its cells recorded its shape (the tiny encoder's): now scaled by one layer's FLOPs, as if installed
    done_shaped(frozen("last", 2000, gone), 1.5, 1250, 2000, tiny)
    pool = cost.timed_cells(tmp_path / "st")
    ratio = (4 * tiny["hidden"] ** 2 + 2 * tiny["hidden"] * tiny["intermediate"]) / cost.layer_flops("minilm-l6")
    seconds, how = cost.prices(pool, todo[:1])[0]
    assert how == "by_scaled" and seconds == pytest.approx((12.0 + 0.04 * 625) * ratio)
    assert cost.layer_flops(gone) is None and cost.layer_flops(gone, None, cost.recorded_shapes(pool)) == \
        pytest.approx(4 * tiny["hidden"] ** 2 + 2 * tiny["hidden"] * tiny["intermediate"])
    # the fine-tuning cell has no fine-tuning cell of its backbone, nor any other backbone's: still unpriced
    assert cost.prices(pool, todo[1:]) == [(None, "unpriced")]


def test_a_frozen_head_is_priced_from_the_same_head_on_another_backbone(tmp_path, tiny_backbone_dir):
    """On a frozen encoder `last` trains a classifier and a budget-matched head a layer's worth: a frozen head without
    done cells on its backbone is priced from the same head's cells on another backbone, scaled by one layer's FLOPs
    (the encoder never runs), before that backbone's other heads; with no such cells, as before."""
    from paper_repro.models.backbone import load_backbone_config

    def frozen(method, size, backbone="minilm-l6", seed=0):
        return apply_overrides(cell(tmp_path, method, size, backbone, seed), {"model.finetune": "frozen"})

    done(frozen("last", 100), 5.0, 200, 100)
    done(frozen("last", 2000), 8.0, 1250, 2000)
    done(frozen("dwatt", 100), 20.0, 200, 100)
    done(frozen("dwatt", 2000), 62.0, 1250, 2000)          # dwatt's fit: 12 s + 0.04 s per step
    tiny_dir = str(tiny_backbone_dir)
    done(frozen("last", 100, tiny_dir), 1.0, 200, 100)    # the other backbone's only done cells: `last`
    pool = cost.timed_cells(tmp_path / "st")
    assert cost.layer_flops("minilm-l6") == 4 * 384 ** 2 + 2 * 384 * 1536
    assert cost.encoder_flops("minilm-l6") == 6 * cost.layer_flops("minilm-l6")
    tiny = load_backbone_config(tiny_dir)
    ratio = ((4 * tiny.hidden_size ** 2 + 2 * tiny.hidden_size * tiny.intermediate_size)
             / cost.layer_flops("minilm-l6"))
    priced = cost.estimate(pool, [frozen("dwatt", 1000, tiny_dir, seed=1)])   # 625 steps (min_epochs 5, batch 8)
    assert priced.by_scaled == 1 and priced.seconds == pytest.approx((12.0 + 0.04 * 625) * ratio)
    # its own backbone's `last` cells price a head that no backbone has run (the fit over every method there)
    unseen = cost.estimate(pool, [frozen("concat", 100, tiny_dir, seed=1)])
    assert unseen.by_backbone == 1 and unseen.seconds == pytest.approx(1.0)
    # full fine-tuning keeps the backbone's own fit over every method first (the encoder dominates every head)
    done(cell(tmp_path, "dwatt", 100), 60.0, 200, 100)
    done(cell(tmp_path, "last", 100, tiny_dir), 2.0, 200, 100)
    full = cost.estimate(cost.timed_cells(tmp_path / "st"), [cell(tmp_path, "dwatt", 100, tiny_dir, seed=1)])
    assert full.by_backbone == 1 and full.seconds == pytest.approx(2.0)


def test_a_layer_cache_built_by_a_cell_is_not_its_cost(tmp_path):
    """The backbone's first frozen cell builds the layer cache every later cell reads: its recorded time less the
    build (wall, and CPU where the build's CPU time was recorded; an unknown CPU share gives no CPU time)."""
    def frozen(seed, timings):
        config = apply_overrides(cell(tmp_path, seed=seed), {"model.finetune": "frozen"})
        manifest = {"config": config.to_dict(), "timings": timings,
                    "steps": {"total": 200, "train_windows": 100}, "data": {"train": {"sentences": 4000}}}
        store.write_cell(config.results_dir, config.study, config.run_id, cell_table(fake_rows(config)), manifest)

    frozen(0, {"total_s": 3066.0, "cpu_s": 865.0, "layer_cache_s": 2946.0, "layer_cache_cpu_s": 760.0})   # built
    frozen(1, {"total_s": 3000.0, "cpu_s": 900.0, "layer_cache_s": 2940.0})       # built, CPU share not recorded
    frozen(2, {"total_s": 34.0, "cpu_s": 30.0, "layer_cache_s": 0.02})            # opened a published cache
    by_seed = {t.total_s: t.cpu_s for t in cost.timed_cells(tmp_path / "st")}
    assert by_seed == pytest.approx({120.0: 105.0, 60.0: None, 33.98: 30.0})


def test_a_peer_takes_its_cfs_share_of_a_core():
    assert cost.cfs_share(0, 0) == 1.0
    assert cost.cfs_share(10, 0) == pytest.approx(110 / 1024, rel=0.03)   # the kernel's weights: 1024 and 110
    assert cost.cfs_share(0, 10) == 1.0                                    # a niced reader counts its peers fully
    assert cost.cfs_share(13, 10) == pytest.approx(1.25 ** -3)             # ... but not the ones niced further
    assert cost.cfs_share(-5, 0) == 1.0


PIDS = range(2 ** 22 + 1, 2 ** 22 + 10)   # above any pid_max: never this process's pid


def fake_proc(root, threads: dict[int, list[tuple[str, str, int]]], autogroups: dict[int, str] | None = None,
              running: int | None = None):
    """/proc with /proc/self, the autogroup switch on, /proc/loadavg (`running` runnable threads on the machine,
    default: the R threads listed) and, per pid, its threads as (name, state, nice) in the kernel's stat format,
    its autogroup (default /autogroup-1) and one cgroup."""
    (root / "self").mkdir(parents=True)
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "sched_autogroup_enabled").write_text("1\n")
    tid = PIDS[-1]
    for pid, rows in threads.items():
        (root / str(pid)).mkdir()
        (root / str(pid) / "cgroup").write_text("0::/\n")
        (root / str(pid) / "autogroup").write_text(f"{(autogroups or {}).get(pid, '/autogroup-1')} nice 0\n")
        for name, state, nice in rows:
            tid += 1
            folder = root / str(pid) / "task" / str(tid)
            folder.mkdir(parents=True)
            fields = [state, "1", str(pid), str(pid), "0", "-1", "4194560"] + ["0"] * 8 + ["20", str(nice)] + ["1"] * 30
            (folder / "stat").write_text(f"{tid} ({name}) {' '.join(fields)}\n", encoding="ascii")
    seen = sum(state == "R" for rows in threads.values() for _, state, _ in rows)
    (root / "loadavg").write_text(f"1.00 1.00 1.00 {seen if running is None else running}/300 99\n")
    return root


def test_runnable_threads_reads_state_nice_and_group(tmp_path):
    a, b, c, d = PIDS[:4]
    proc = fake_proc(tmp_path / "proc", {
        a: [("sweep", "R", 0), ("sweep", "S", 0)],
        b: [("paper-repro", "R", 0), ("pool", "S", 0)],
        c: [("odd) R (name", "R", 10), ("frozen", "D", 10), ("zombie", "Z", 10)],   # a name with ") R (" in it
        d: [("ssh", "R", 10)],
    }, autogroups={d: "/autogroup-7"})
    found = sorted(cost.runnable_threads(proc), key=lambda r: (r.pid, r.state))
    assert [(r.pid, r.state, r.nice) for r in found] == [(a, "R", 0), (b, "R", 0), (c, "D", 10), (c, "R", 10),
                                                         (d, "R", 10)]
    assert found[0].group == found[1].group == found[2].group == "/|/autogroup-1" != found[4].group == "/|/autogroup-7"
    assert cost.nr_running(proc) == 4
    assert cost.runnable_threads(tmp_path / "no_proc") is None and cost.nr_running(tmp_path / "no_proc") is None


def test_a_process_that_ends_while_read_is_left_out(tmp_path, monkeypatch):
    a, b = PIDS[:2]
    proc = fake_proc(tmp_path / "proc", {a: [("sweep", "R", 0)], b: [("gone", "R", 0)]})
    listdir = cost.os.listdir

    def vanishing(path):
        if str(path) == str(proc / str(b) / "task"):
            raise FileNotFoundError(path)
        return listdir(path)

    monkeypatch.setattr(cost.os, "listdir", vanishing)
    assert [r.pid for r in cost.runnable_threads(proc)] == [a]
    monkeypatch.undo()
    (proc / str(a) / "cgroup").unlink()                                    # unreadable: a group of its own
    assert cost.sched_group(a, proc) == f"?{a}"


def test_the_scheduling_group_is_the_cpu_cgroup_and_in_its_root_the_autogroup(tmp_path):
    a = PIDS[0]
    proc = fake_proc(tmp_path / "proc", {a: [("sweep", "R", 0)]})
    assert cost.sched_group(a, proc) == "/|/autogroup-1"
    assert cost.sched_group(a, proc, autogroup=False) == "/"
    (proc / "sys" / "kernel" / "sched_autogroup_enabled").write_text("0\n")
    assert cost.sched_group(a, proc) == "/"
    # cgroup v1: the line of the cpu controller; another memory cgroup does not split the group; a job's own cpu
    # cgroup does, and the autogroup no longer applies in it
    (proc / str(a) / "cgroup").write_text("4:memory:/job/17\n2:cpu,cpuacct:/\n0::/\n")
    assert cost.sched_group(a, proc, autogroup=True) == "/|/autogroup-1"
    (proc / str(a) / "cgroup").write_text("4:memory:/\n2:cpu,cpuacct:/slurm/job_9\n0::/\n")
    assert cost.sched_group(a, proc, autogroup=True) == "/slurm/job_9"
    (proc / str(a) / "cgroup").write_text("garbage\n")
    assert cost.sched_group(a, proc) == f"?{a}"


def test_peer_load_weighs_niced_peers_of_its_group_and_counts_the_rest(tmp_path):
    a, b, c, d = PIDS[:4]
    proc = fake_proc(tmp_path / "proc", {a: [("me", "R", 0)], b: [("peer", "R", 0)], c: [("frozen", "R", 10)],
                                         d: [("other session", "R", 10)]}, autogroups={d: "/autogroup-7"}, running=6)
    snapshot = cost.runnable_threads(proc)
    group = cost.sched_group(a, proc)
    weighted, unseen = cost.peer_load(snapshot, cost.nr_running(proc), a, 0, group)
    assert weighted == pytest.approx(1 + 1.25 ** -10 + 1)   # b in full, c by its share, d (another group) in full
    assert unseen == 2                                      # 6 runnable on the machine, 4 listed
    assert cost.peer_load(snapshot, None, a, 0, group)[1] == 0


def test_load_weights_a_niced_peer_by_its_share(tmp_path, monkeypatch):
    """Two nice-0 peers and a nice-10 one on 2 cores: a nice-0 sweeper's 1-thread cell sees 3.11 runnable threads
    (stretch 1.55), where the unweighted count said 4 (stretch 2); without /proc, the 1-minute load average."""
    import torch

    me, a, b, c = PIDS[:4]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(cost.os, "getpid", lambda: me)
    monkeypatch.setattr(cost.os, "nice", lambda increment: 0)
    monkeypatch.setattr(cost.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    proc = fake_proc(tmp_path / "proc", {me: [("me", "R", 0)], a: [("a", "R", 0)], b: [("b", "R", 0)],
                                         c: [("c", "R", 10)]})
    load = cost.Load.now(proc)
    assert load.busy == pytest.approx(1 + 1 + 1.25 ** -10 + 1) and not load.niced
    assert load.stretch == pytest.approx(1.55, abs=0.01)
    monkeypatch.setattr(cost.os, "nice", lambda increment: 10)             # the niced sweeper counts them fully
    assert cost.Load.now(proc).busy == pytest.approx(4.0) and cost.Load.now(proc).niced
    monkeypatch.setattr(cost.os, "getloadavg", lambda: (2.5, 2.0, 1.0))
    assert cost.Load.now(tmp_path / "no_proc").busy == 2.5


def test_load_takes_the_median_of_its_snapshots(tmp_path, monkeypatch):
    """A peer runnable in most of five snapshots counts, one seen for a moment does not (a kernel thread between two
    reads); so do threads the machine runs but /proc does not list, and those not at all where this process may
    use only some of the machine's cores."""
    import torch

    me, peer, blip = PIDS[:3]
    group = "/|/autogroup-1"
    mine, busy = cost.Runnable(me, "R", 0, group), cost.Runnable(peer, "D", 0, group)
    snapshots = iter([[mine, busy], [mine, busy, cost.Runnable(blip, "R", 0, group)], [mine], [mine, busy], [mine]] * 2)
    running = iter([2, 4, 3, 3, 1] * 2)   # unseen: 1, 2, 2, 2, 0 -> median 2
    monkeypatch.setattr(cost, "runnable_threads", lambda proc: next(snapshots))
    monkeypatch.setattr(cost, "nr_running", lambda proc: next(running))
    monkeypatch.setattr(cost, "sched_group", lambda pid, proc: group)
    monkeypatch.setattr(cost.os, "getpid", lambda: me)
    monkeypatch.setattr(cost.os, "nice", lambda increment: 0)
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cost.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cost.Load, "SNAPSHOT_GAP_S", 0.0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert cost.Load.now(tmp_path).busy == 1 + 2 + 1        # the peer (3 of 5), not the blip (1 of 5); 2 unseen
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 64)   # a cpuset of 2 of 64 cores: no unseen threads added
    assert cost.Load.now(tmp_path).busy == 1 + 0 + 1


def test_expected_wall_reads_the_load_only_when_the_cpu_price_uses_it():
    from paper_repro.sweep.cost import DeadlinePrice, Load, expected_wall

    def unread():
        raise AssertionError("the load was read")

    assert expected_wall(DeadlinePrice(600.0, "by_steps"), unread)[0] == 600.0
    own = DeadlinePrice(600.0, "by_steps", 60.0, "by_steps", 1)
    assert expected_wall(own, lambda: Load(3.0, 2, 1, False))[0] == 90.0


def test_runnable_threads_sees_a_real_niced_spinner():
    """On this machine's /proc: a busy loop started 13 nice steps below this process is a runnable thread of its
    pid, at that nice value, in this process's scheduling group; where the groups cannot be read (a sandbox without
    `/proc/<pid>/cgroup` or autogroup), in a group of its own, so that it counts in full."""
    import os
    import subprocess
    import sys
    import time

    if cost.runnable_threads() is None:
        pytest.skip("no /proc")
    want = min(19, os.nice(0) + 13)
    spin = "print('spinning', flush=True)\nwhile True: pass"
    spinner = subprocess.Popen(["nice", "-n", "13", sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout.readline() == "spinning\n"   # past exec, at its nice value, in the loop
        deadline, mine = time.monotonic() + 20, []
        while not mine and time.monotonic() < deadline:
            mine = [r for r in cost.runnable_threads() if r.pid == spinner.pid and r.state == "R"]
            time.sleep(0.05)
        own = cost.sched_group(os.getpid())
        group = f"?{spinner.pid}" if own.startswith("?") else own
        assert [(r.nice, r.group) for r in mine] == [(want, group)]
    finally:
        spinner.kill()
        spinner.wait()
        spinner.stdout.close()


def test_recent_load_reads_the_machine_again_only_after_max_age(monkeypatch):
    """Pricing a thousand pending cells near a deadline reads /proc once, not once per cell."""
    import time

    readings = iter([cost.Load(1.0, 2, 1, False), cost.Load(3.0, 2, 1, False)])
    monkeypatch.setattr(cost.Load, "now", classmethod(lambda cls: next(readings)))
    load = cost.recent_load(max_age_s=0.2)
    assert [load().busy for _ in range(1000)] == [1.0] * 1000
    time.sleep(0.25)
    assert load().busy == 3.0
