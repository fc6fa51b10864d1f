"""The benchmark scripts run (tiny sizes); they assert nothing about timings."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_aggregators_benchmark_smoke():
    table = _load("aggregators").main(["--quick", "--repeats", "1", "--runs", "2"])
    for name in ("maa", "weighted_sum", "topk_mean", "algorithm 1 (paper)"):
        assert f"| {name} |" in table


def test_maa_truncation_benchmark_smoke():
    table = _load("maa_truncation").main(["--max-n", "200"])
    assert "| 32 | 36 |" in table and "float64" in table


def test_evaluation_benchmark_smoke(capsys):
    assert _load("evaluation").main(["--videos", "20", "--classes", "3", "--predictions-per-video", "4"]) == 0
    printed = capsys.readouterr().out
    assert "| `detection_map` (vectorised) |" in printed and "| whole `wsl-video evaluate` command" in printed


def test_extraction_benchmark_smoke():
    table = _load("extraction").main(["--quick"])
    for stage in ("| decode + resample + scale |", "| TV-L1", "| RAFT small", "| I3D rgb", "| I3D flow",
                  "| whole excerpt"):
        assert stage in table
    assert "outside the networks" in table


def test_tune_transfer_benchmark_smoke(tmp_path):
    import json

    module = _load("tune_transfer")
    argv = ["--out", str(tmp_path), "--quick", "--videos", "24", "--per-class", "2", "--sim", "feature_dim=8",
            "--trials", "2", "--tune-seeds", "0", "--seeds", "0", "--aggregators", "weighted_sum"]
    assert module.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())["aggregators"]["weighted_sum"]
    assert {"held_out_default", "held_out_tuned", "test_default", "test_tuned"} <= set(results)
    assert not (tmp_path / "data-train-only" / "features" / "test").exists()
    assert (tmp_path / "data" / "features" / "test").is_dir()
    gt = json.loads((tmp_path / "data" / "gt.json").read_text())["database"]
    train = [entry for entry in gt.values() if entry["subset"] != "test"]
    classes = {a["label"] for entry in train for a in entry["annotations"]}
    assert len(train) <= 2 * len(classes) < 24  # two videos per class kept
    assert "| weighted_sum |" in (tmp_path / "table.md").read_text()


def test_image_demo_seeds_benchmark_smoke(tmp_path):
    from wsl_image.sim import make_cub_sim

    sim = tmp_path / "sim"
    make_cub_sim(sim, seed=1, num_classes=2, train_per_class=3, test_per_class=2, val_per_class=1, image_size=48,
                 clutter=1)
    argv = ["--out", str(tmp_path / "out"), "--seeds", "0", "1", "--sim", str(sim), "--demo-args", "--aggregators",
            "maa", "--image-size", "32", "--epochs", "1", "--overlays", "0", "--device", "cpu"]
    assert _load("image_demo_seeds").main(argv) == 0
    table = (tmp_path / "out" / "table.md").read_text().splitlines()
    assert table[2].startswith("| MAAN (maa) |") and " ± " in table[2] and "| 1 |" in table[2]


# ---------------------------------------------------------------- benchmarks/regenerate_docs.py


def test_regenerate_docs_names_every_marked_table(capsys):
    """--list names every table with the pages that hold it; every marker in the docs is a known table."""
    module = _load("regenerate_docs")
    assert module.main(["--list"]) == 0
    listed = capsys.readouterr().out
    holders = module.pages_with(module.default_pages())
    marked = {name for names in holders.values() for name in names}
    assert marked == set(module.TABLES)
    for name, table in module.TABLES.items():
        assert f"{name}: " in listed and f"command: {table.command}" in listed
    assert "(none)" not in listed
    assert module.main(["--all", "--dry-run"]) == 0
    planned = capsys.readouterr().out
    for table in module.TABLES.values():
        assert planned.count(f"would run: {table.command}\n") == 1


def test_regenerate_docs_tables_in_the_docs_are_in_canonical_form():
    """Between its markers each table is exactly its command and one table: regenerating replaces it whole."""
    module = _load("regenerate_docs")
    for page in module.pages_with(module.default_pages()):
        text = page.read_text(encoding="utf-8")
        for name in module.find_markers(text):
            body = text.split(f"<!-- begin: {name} -->\n", 1)[1].split(f"<!-- end: {name} -->", 1)[0]
            tables = module.markdown_tables(body)
            assert len(tables) == 1, (page.name, name)
            assert "\n" + body == module.table_block(module.TABLES[name].command, tables[0]), (page.name, name)


def _fake_pages(tmp_path):
    pages = [tmp_path / "a.md", tmp_path / "b.md"]
    pages[0].write_text("# A\n\nintro\n\n<!-- begin: aggregator-speed -->\nold speed\n<!-- end: aggregator-speed -->\n"
                        "\nbetween\n\n<!-- begin: maa-weights-scaling -->\n| old |\n|---|\n"
                        "<!-- end: maa-weights-scaling -->\n\noutro\n")
    pages[1].write_text("B\n<!-- begin: video-demo -->\n<!-- end: video-demo -->\nB end\n")
    return pages


def test_regenerate_docs_rewrites_between_markers_with_a_fake_benchmark(tmp_path):
    module = _load("regenerate_docs")
    pages = _fake_pages(tmp_path)
    calls = []

    def fake_run(command, workdir):
        calls.append(command)
        if "demo" in command:
            (workdir / "demo_out").mkdir()
            (workdir / "demo_out" / "table.md").write_text("| Aggregator | avg |\n|---|---|\n| MAAN | 43.7 |\n")
            return "progress lines\n"
        return "device=cpu\n| size | ms |\n|---|---|\n| T=20 | 5.4 |\n\nweights\n| N | us |\n|---|---|\n| 20 | 431 |\n"

    changed = module.regenerate(["aggregator-speed", "maa-weights-scaling", "video-demo"], pages, run=fake_run)
    assert sorted(changed) == sorted(pages)
    assert calls == ["python benchmarks/aggregators.py", module.TABLES["video-demo"].command]  # each command once
    assert pages[0].read_text() == (
        "# A\n\nintro\n\n<!-- begin: aggregator-speed -->\n```bash\npython benchmarks/aggregators.py\n```\n\n"
        "| size | ms |\n|---|---|\n| T=20 | 5.4 |\n<!-- end: aggregator-speed -->\n\nbetween\n\n"
        "<!-- begin: maa-weights-scaling -->\n```bash\npython benchmarks/aggregators.py\n```\n\n"
        "| N | us |\n|---|---|\n| 20 | 431 |\n<!-- end: maa-weights-scaling -->\n\noutro\n")
    assert "| MAAN | 43.7 |\n<!-- end: video-demo -->\nB end\n" in pages[1].read_text()
    again = {page: page.read_text() for page in pages}
    module.regenerate(["aggregator-speed", "maa-weights-scaling", "video-demo"], pages, run=fake_run)
    assert {page: page.read_text() for page in pages} == again  # idempotent
    text = "<!-- begin: extraction -->\n<!-- end: extraction -->\n"
    assert module.replace_tables(text, {"extraction": "\n| a \\g<0> \\1 |\n"}) == (
        "<!-- begin: extraction -->\n| a \\g<0> \\1 |\n<!-- end: extraction -->\n")  # taken literally


def test_regenerate_docs_writes_nothing_when_a_benchmark_fails(tmp_path):
    module = _load("regenerate_docs")
    pages = _fake_pages(tmp_path)
    before = [page.read_bytes() for page in pages]

    def failing_run(command, workdir):
        if "demo" in command:
            raise RuntimeError("demo failed")
        return "| a |\n|---|\n| 1 |\n\n| b |\n|---|\n| 2 |\n"

    with pytest.raises(RuntimeError, match="demo failed"):
        module.regenerate(["aggregator-speed", "video-demo"], pages, run=failing_run)
    assert [page.read_bytes() for page in pages] == before
    with pytest.raises(ValueError, match="no page holds the marker"):
        module.regenerate(["extraction"], pages, run=failing_run)
    with pytest.raises(ValueError, match="unknown table"):
        module.regenerate(["no-such-table"], pages, run=failing_run)
    pages[1].write_text("<!-- begin: video-demo -->\nno end\n")
    with pytest.raises(ValueError, match="begin: video-demo has no end"):
        module.regenerate(["video-demo"], pages, run=failing_run)


def test_regenerate_docs_runs_a_real_benchmark_command(tmp_path):
    """The command runner: this checkout's code, from another folder, and the table read off its output."""
    module = _load("regenerate_docs")
    output = module.run_command("OMP_NUM_THREADS=1 python benchmarks/maa_truncation.py --max-n 200", tmp_path)
    tables = module.markdown_tables(output)
    assert len(tables) == 1 and tables[0].startswith("| K | L | float64 max rel. error")
    with pytest.raises(RuntimeError, match="exit status 2"):
        module.run_command("python benchmarks/maa_truncation.py --no-such-option", tmp_path)


def test_methods_table_tiny_into_docs(tmp_path):
    """benchmarks/methods_table.py on a tiny setting (2 methods, 2 tune trials, 1 seed), its table put between
    the methods-table markers of a page by regenerate_docs."""
    import yaml

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"iterations": {"choices": [2, 4]}, "weight_decay": 0.0, "sparsity_weight": 0.0,
                                     "video_scores": "full", "cas_thresholds": 0.2}))
    module, docs = _load("methods_table"), _load("regenerate_docs")
    argv = ["--methods", "maan", "wtalc", "--seeds", "0", "--trials", "2", "--tune-seeds", "0", "--tune-space",
            str(space), "--sim", "videos=12", "--sim", "feature_dim=8", "--quiet"]
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n<!-- begin: methods-table -->\nold\n<!-- end: methods-table -->\n\nafter\n")

    def tiny_run(command, workdir):
        assert command == docs.TABLES["methods-table"].command
        assert module.main(["--out", str(workdir / "methods_table"), *argv]) == 0
        return ""

    assert docs.regenerate(["methods-table"], [page], run=tiny_run) == [page]
    text = page.read_text()
    tables = docs.markdown_tables(text)
    assert len(tables) == 1 and text.endswith("<!-- end: methods-table -->\n\nafter\n") and "old" not in text
    rows = [line.split(" | ")[:4] for line in tables[0].splitlines()[2:]]
    assert rows == [[f"| {dist}", *row] for dist in ("thumos14-sim", "shifted") for row in (
        ["`maan`", "`maa` (original)", "tuned"], ["`wtalc`", "`topk_mean` (original)", "tuned"],
        ["`wtalc`", "`maa` (plugged in)", "tuned"])]


def test_video_recipes_benchmark_smoke():
    table = _load("video_recipes").main(["--quick", "--methods", "wtalc,co2net"])
    assert "| maan | 20 |" in table and "| wtalc | <= 32 (crop) |" in table and "| co2net | 32 |" in table
    assert "ratio, same snippets" in table and "ratio to maan at its defaults" in table and "| 1.00 |" in table
    assert "| Adam step (ms) |" in table


def test_video_recipe_runs_benchmark_smoke(tmp_path):
    table = _load("video_recipe_runs").main(["--quick", "--methods", "wtalc", "--threads", "1",
                                             "--data", str(tmp_path / "data")])
    assert "| wtalc | 4 | 750 | 3 |" in table and "| 5000 |" in table and "extrapolated" in table
    assert (tmp_path / "data" / "features" / "train" / "rgb").is_dir()


def test_image_methods_table_quick_into_docs(tmp_path):
    """benchmarks/image_methods_table.py --quick (1 method, 1 aggregator, 2 trials, 1 seed, tiny sims): every row is
    tuned on the train-fullsup split and scored on test, and its table goes between the page's markers."""
    import json

    module, docs = _load("image_methods_table"), _load("regenerate_docs")
    argv = ["--quick", "--methods", "acol", "--aggregators", "maa", "--quiet"]
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n<!-- begin: image-methods-table -->\nold\n<!-- end: image-methods-table -->\n")

    def tiny_run(command, workdir):
        assert command == docs.TABLES["image-methods-table"].command
        assert module.main(["--out", str(workdir / "image_methods_table"), *argv]) == 0
        out = workdir / "image_methods_table"
        best = (out / "openimages-sim" / "tune" / "acol-maa" / "best.yaml").read_text()
        assert "# held-out PxAP: " in best and "acol_threshold" in best
        # ACoL and SPG start from the recipe with their heads scaled; the other methods from the plain recipe
        assert f"head_width_scale: {module.HEAD_WIDTH_SCALE}" in best
        assert "head_width_scale: null" in (out / "recipe.yaml").read_text()
        metrics = json.loads((out / "openimages-sim" / "runs" / "acol-maa" / "seed0" / "metrics.json").read_text())
        assert metrics["split"] == "test" and 0.0 <= metrics["pxap"] <= 1.0
        return ""

    assert docs.regenerate(["image-methods-table"], [page], run=tiny_run) == [page]
    tables = docs.markdown_tables(page.read_text())
    assert len(tables) == 1 and "old" not in page.read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in tables[0].splitlines()[2:]]
    assert [row[:3] for row in rows] == [[name, "`acol`", "`maa`"] for name in ("cub-sim", "openimages-sim")]
    for row in rows:  # the headline metric of the dataset is filled, the other dataset's is not
        filled = row[4] if row[0] == "cub-sim" else row[5]
        empty = row[5] if row[0] == "cub-sim" else row[4]
        assert 0.0 <= float(filled) <= 100.0 and empty == "–"


def test_wsol_evaluator_benchmark_quick(capsys):
    """The quick run checks that the library and the re-implemented wsolevaluation evaluator agree."""
    assert _load("wsol_evaluator").main(["--quick"]) == 0
    printed = capsys.readouterr().out
    boxes = "| boxes: MaxBoxAcc + MaxBoxAccV2, IoU 30/50/70 (60 maps, 100 thresholds), batches of 64, 1 thread |"
    assert boxes in printed
    assert "| masks: PxAP + PIoU (40 maps, 100 thresholds), one map per update |" in printed
    assert "| masks: PxAP + PIoU (40 maps, 100 thresholds), batches of 256, 1 thread |" in printed


def test_video_defaults_table_tiny(tmp_path, capsys):
    """benchmarks/video_defaults_table.py on a tiny simulator: one run per method x pooling x seed, finished runs
    kept, an unfinished run folder refused, and a table of mean ± std over the seeds of every finished run."""
    import json
    import shutil

    import yaml

    module = _load("video_defaults_table")
    out = tmp_path / "defaults"
    quick = ["--out", str(out), "--sim", "videos=12", "--sim", "feature_dim=8", "--iterations", "3"]
    assert module.main(["--methods", "maan", "--seeds", "0", "1", *quick]) == 0
    assert module.main(["--methods", "wtalc", "--seeds", "0", *quick]) == 0  # the table covers both calls' runs
    runs = sorted(path.name for path in out.iterdir() if path.is_dir())
    assert runs == ["maan-maa-s0", "maan-maa-s1", "wtalc-maa-s0", "wtalc-topk_mean-s0"]
    assert yaml.safe_load((out / "maan-maa-s0" / "config.yaml").read_text())["train"]["device"] == "cpu"
    table = (out / "table.md").read_text()
    assert table.splitlines()[0] == ("Simulated data: `thumos14-sim` with `--sim videos=12 --sim feature_dim=8` "
                                     "(a quick check, not a table's distribution).")
    table = table.split("\n\n", 1)[1]
    rows = [line.split(" | ")[:3] for line in table.splitlines()[2:]]
    assert rows == [["| `maan`", "`maa` (original)", "0, 1"], ["| `wtalc`", "`topk_mean` (original)", "0"],
                    ["| `wtalc`", "`maa` (plugged in)", "0"]]
    assert " ± " not in table.splitlines()[3]
    first = [json.loads((out / f"maan-maa-s{seed}" / "metrics.json").read_text()) for seed in (0, 1)]
    mean = 100 * (first[0]["average_mAP_0.1_0.7"] + first[1]["average_mAP_0.1_0.7"]) / 2
    assert table.splitlines()[2].split(" | ")[3].startswith(f"{mean:.1f} ± ")

    stamp = (out / "maan-maa-s0" / "metrics.json").stat().st_mtime_ns  # finished runs are kept, not rerun
    assert module.main(["--methods", "maan", "--seeds", "0", *quick]) == 0
    assert (out / "maan-maa-s0" / "metrics.json").stat().st_mtime_ns == stamp

    (out / "maan-maa-s2").mkdir()  # an unfinished run stops the script, naming it
    capsys.readouterr()
    assert module.main(["--methods", "maan", "--seeds", "2", *quick]) == 2
    assert "maan-maa-s2 holds an unfinished run" in capsys.readouterr().err
    assert module.main(["--table-only", "--out", str(out)]) == 0

    shifted = tmp_path / "shifted"  # another distribution: the simulator's preset, in its own folder
    assert module.main(["--methods", "maan", "--seeds", "0", "--distribution", "shifted", *quick[2:],
                        "--out", str(shifted)]) == 0
    assert yaml.safe_load((shifted / "maan-maa-s0" / "config.yaml").read_text())["data"]["sim"] == {
        "preset": "shifted", "videos": 12, "feature_dim": 8}
    assert module.describe_sim({"preset": "shifted"}) == "Simulated data: `shifted` (`--sim preset=shifted`)."
    assert "`thumos14-sim` (the simulator's default options)" in module.describe_sim({})
    capsys.readouterr()
    assert module.main(["--methods", "maan", "--seeds", "3", "--distribution", "shifted", *quick]) == 2
    assert "was simulated with" in capsys.readouterr().err and not (out / "maan-maa-s3").exists()
    shutil.copytree(shifted / "maan-maa-s0", out / "maan-maa-s5")  # mixed runs are not tabulated together
    assert module.main(["--table-only", "--out", str(out)]) == 2
    assert "maan-maa-s5 was simulated with" in capsys.readouterr().err


def test_image_methods_table_held_out_unrounded(tmp_path):
    """A row's held-out score is the chosen trial's unrounded score from trials.csv, not best.yaml's 2 decimals."""
    module = _load("image_methods_table")
    (tmp_path / "best.yaml").write_text("# chosen by wsl-image tune: trial 1 of study 'maa' (sqlite:///x), 2 finished "
                                        "trials\n# held-out PxAP: 44.09%\nmodel: {}\n")
    assert module.held_out_score(tmp_path) == 44.09  # no trials.csv: the header's rounded value
    (tmp_path / "trials.csv").write_text("number,state,held_out_pxap,lr,seconds,note\n"
                                         "0,complete,0.3509,0.001,65.1,\n1,complete,0.44087922217911424,0.002,82.1,\n")
    assert module.held_out_score(tmp_path) == 100 * 0.44087922217911424
