"""Bad input through the `nas` command as a user types it: exit status 2, one line on stderr, no
traceback, and nothing half-written in the store (real subprocesses, a real SQLite file, and a
real PostgreSQL server where NAS_TEST_POSTGRES_URL is set)."""

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
SYNTHETIC = ["--evaluator", "synthetic", "--budget-architectures", "4"]


def nas(env, *args, check=True):
    result = subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def searches(env) -> int:
    database = Path(env["NAS_HOME"]) / "nas.db"
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        return connection.execute("select count(*) from searches").fetchone()[0]


def assert_user_error(result, *fragments):
    """Exit 2, exactly one line on stderr holding every fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -------------------------------------------------------------------------------------------
# numbers: budget, seed and the other ranges


@pytest.mark.parametrize("seconds", ["inf", "nan", "-5", "0"])
def test_budget_seconds_must_be_finite_and_positive(env, seconds):
    result = nas(env, "search", *SYNTHETIC, "--budget-seconds", seconds, check=False)
    assert_user_error(result, "budget.seconds")
    assert searches(env) == 0


@pytest.mark.parametrize("seconds", [".inf", ".nan", "-1.0"])
def test_budget_seconds_in_a_config_file(env, tmp_path, seconds):
    config = tmp_path / "search.yaml"
    config.write_text(f"evaluator: {{name: synthetic}}\nbudget: {{seconds: {seconds}}}\n")
    assert_user_error(nas(env, "search", "-c", str(config), check=False), "budget.seconds")
    assert searches(env) == 0


def test_a_key_given_twice_in_a_config_file_is_refused_with_both_lines(env, tmp_path):
    config = tmp_path / "search.yaml"  # the second budget would silently win
    config.write_text("evaluator: {name: synthetic}\nbudget: {architectures: 4}\n"
                      "seed: 1\nbudget: {architectures: 4000}\n")
    assert_user_error(nas(env, "search", "-c", str(config), check=False),
                      "found key 'budget' again (first given on line 2)", "line 4")
    assert searches(env) == 0


@pytest.mark.parametrize("seed", [str(2**63), "-1", str(10**30)])
def test_seed_out_of_range_says_the_range(env, seed):
    result = nas(env, "search", *SYNTHETIC, "--seed", seed, check=False)
    assert_user_error(result, "seed", "0 <= seed < 2**63")
    assert searches(env) == 0


def test_train_seed_out_of_range_says_the_range(env):
    result = nas(env, "train", "--arch", "lenet5", "--seed", str(2**63), check=False)
    assert_user_error(result, "seed", "0 <= seed < 2**63")


def test_the_largest_seed_is_accepted(env):
    out = nas(env, "search", *SYNTHETIC, "--seed", str(2**63 - 1), "--json")
    assert json.loads(out.stdout)["status"] == "finished"


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("samples_per_step: 0", "samples_per_step"),
        ("evaluator: {name: synthetic, epochs: 0}", "evaluator.epochs"),
        ("dataset: {valid_fraction: 1.0}", "dataset.valid_fraction"),
        ("dataset: {valid_fraction: 0}", "dataset.valid_fraction"),
        ("network: {channels: 1000000}", "network.channels"),
        ("objective: {params_target: 1000, params_weight: -.inf}", "objective.params_weight"),
        ("strategy: {name: reinforce, lr: .nan}", "strategy.lr"),
        ("objective: {multiply_adds_target: 0}", "objective.multiply_adds_target"),
        ("evaluator: {name: synthetic}\nobjective: {params_target: 1000}",
         "synthetic evaluator builds no network"),
        ("evaluator: {name: synthetic}\nbudget: {architectures: true}",  # ran 1 (true = 1)
         "budget.architectures: expected a number, got true"),
        ("evaluator: {name: synthetic}\nstrategy: {name: evolution, population_size: true}",
         "strategy.population_size: expected a number, got true"),
        ("evaluator: {name: standalone, epochs: 2, reward_epochs: 3}",
         "evaluator.reward_epochs (3) exceeds evaluator.epochs (2)"),
        # each was stored, and then failed the search or every candidate of it
        ("evaluator: {name: synthetic}\nrunner: {cpus: 1.0e-300}",
         "runner.cpus: Ray counts resources to 4 decimals"),
        ("evaluator: {name: standalone, timeout_seconds: 1.0e+300}",
         "evaluator.timeout_seconds: at most 2,592,000"),
        ("evaluator: {name: standalone, memory_limit_mb: 1000000000000000}",
         "evaluator.memory_limit_mb: at most 16,777,216"),
        ("evaluator: {name: standalone, batch_size: 1000000000000}",
         "evaluator.batch_size: at most 65,536"),
        ("evaluator: {name: standalone, batch_size: 32, micro_batch: 64}",
         "evaluator.micro_batch (64) exceeds evaluator.batch_size (32)"),
        ("evaluator: {name: synthetic}\nbudget: {architectures: 1180591620717411303424}",
         "budget.architectures: at most 10,000,000"),
        ("evaluator: {name: synthetic}\nbudget: {seconds: 1.0e+300}",
         "budget.seconds: at most 31,622,400"),
    ],
)
def test_other_numeric_ranges_are_checked(env, tmp_path, setting, field):
    config = tmp_path / "search.yaml"
    config.write_text(f"{setting}\n")
    assert_user_error(nas(env, "search", "-c", str(config), check=False), field)
    assert searches(env) == 0


def _asked(env, search_id):
    database = Path(env["NAS_HOME"]) / "nas.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "select genotype from architectures where search_id = ? order by id",
            (search_id,)).fetchall()
    return [row[0] for row in rows]


def test_seeds_that_differ_by_2_to_the_32_give_different_searches(env):
    """torch's CPU generator keeps 32 bits of a seed: seeds are mixed before they reach it."""
    ids = []
    for seed in (0, 2**32):
        out = nas(env, "search", "--evaluator", "synthetic", "--budget-architectures", "8",
                  "--seed", str(seed), "--json")
        ids.append(json.loads(out.stdout)["search_id"])
    first, second = (_asked(env, search_id) for search_id in ids)
    assert len(first) == len(second) == 8
    # the first step's four are asked before any reward (the hidden targets differ anyway)
    assert first[:4] != second[:4]


def test_an_op_prior_outside_the_space_fails_before_anything_is_stored(env, tmp_path):
    config = tmp_path / "prior.yaml"
    config.write_text("strategy: {name: reinforce, op_prior: {nope: 1.0, identity: 0.5}}\n"
                      "evaluator: {name: synthetic}\n")
    result = nas(env, "search", "-c", str(config), check=False)
    assert_user_error(result, "strategy.op_prior", "nope")
    assert searches(env) == 0


def test_show_top_beyond_its_range_names_the_option(env):
    search_id = _search(env, "top")
    result = nas(env, "show", search_id, "--top", str(10**20), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--top" in result.stderr


@pytest.mark.parametrize(("option", "value"), [("--cells", "100000"), ("--channels", "100000")])
def test_zoo_list_sizes_beyond_the_servers_limits_are_refused_at_once(env, option, value):
    result = nas(env, "zoo", "list", option, value, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert option in result.stderr


# -------------------------------------------------------------------------------------------
# strings: NUL, control characters, length, markup


def test_nul_in_a_name_is_rejected_before_anything_is_stored(env, tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text('name: "bad\\0name"\nevaluator: {name: synthetic}\n')
    assert_user_error(nas(env, "search", "-c", str(config), check=False), "name", "NUL")
    assert searches(env) == 0


@pytest.mark.skipif(not os.environ.get("NAS_TEST_POSTGRES_URL"),
                    reason="NAS_TEST_POSTGRES_URL is not set")
def test_nul_in_a_name_on_postgresql(env, tmp_path):
    import sqlalchemy

    url = os.environ["NAS_TEST_POSTGRES_URL"]
    name = f"nul-test-{tmp_path.name}"
    config = tmp_path / "search.yaml"
    config.write_text(f'name: "{name}\\0"\nevaluator: {{name: synthetic}}\n')
    result = nas({**env, "NAS_DATABASE_URL": url}, "search", "-c", str(config), check=False)
    assert_user_error(result, "name", "NUL")
    engine = sqlalchemy.create_engine(url)  # plain SQL: the database may be at a newer revision
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("searches"):
                return  # the config was refused before the store was opened: nothing written
            count = connection.execute(sqlalchemy.text(
                "select count(*) from searches where name like :name"), {"name": f"{name}%"})
            assert count.scalar() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize(("name", "message"), [
    ("x" * 201, "at most 200 characters"),
    ("two\nlines", "one line"),
    ("tab\there", "control characters"),
    ("   ", "shows nothing"),  # accepted before, as the three below
    ("\u200b", "shows nothing"),
    ("report\u202etxt.exe", "U+202E"),
])
def test_names_are_one_short_line(env, name, message):
    result = nas(env, "search", *SYNTHETIC, "--name", name, check=False)
    assert_user_error(result, "name", message)
    assert searches(env) == 0


def test_markup_in_a_name_and_in_an_error_is_printed_as_typed(env):
    out = nas(env, "search", *SYNTHETIC, "--name", "[red]x[/] [bold]y")
    assert "([red]x[/] [bold]y) queued" in out.stdout
    search_id = out.stdout.split()[1]
    assert "([red]x[/] [bold]y)" in nas(env, "show", search_id).stdout
    assert "[red]x[/] [bold]y" in nas({**env, "COLUMNS": "200"}, "searches").stdout
    missing = nas(env, "show", "[red]nope[/]", check=False)
    assert_user_error(missing, "unknown search id '[red]nope[/]'")


# -------------------------------------------------------------------------------------------
# genotype files


def test_a_genotype_nested_thousands_deep_is_a_clean_error(env, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"normal": ' + "[" * 5000 + "]" * 5000 + ', "reduction": []}')
    result = nas(env, "train", "--arch", str(path), check=False)
    assert_user_error(result, "deep.json", "nested too deeply")
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert_user_error(nas(env, "train", "--arch", str(path), check=False), "nested too deeply")


def test_a_genotype_nested_hundreds_deep_is_reported_short(env, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"normal": [' + "[" * 900 + "]" * 900 + '], "reduction": []}')
    result = nas(env, "train", "--arch", str(path), check=False)
    assert_user_error(result, "normal cell, block 0")
    assert len(result.stderr) < 400


def test_a_deep_config_file_is_a_clean_error(env, tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text("strategy: {name: random, x: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert_user_error(nas(env, "search", "-c", str(config), check=False), "search.yaml")
    assert searches(env) == 0


# -------------------------------------------------------------------------------------------
# export


def _search(env, name):
    out = nas(env, "search", *SYNTHETIC, "--seed", "3", "--name", name, "--json")
    return json.loads(out.stdout)["search_id"]


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _without_source(code: str) -> tuple[str, str]:
    """The module without its `SOURCE = ...` assignment (one line, or a parenthesised block),
    and that assignment."""
    before, rest = code.split("\nSOURCE = ", 1)
    end = rest.index("\n)\n") + 3 if rest.startswith("(") else rest.index("\n") + 1
    return before + "\n" + rest[end:], rest[:end]


HOSTILE = 'evil""" + str(__import__("sys").exit(3)) + """\\\' \'\'\' {x} [red]'


def test_a_hostile_name_does_not_change_the_exported_code(env, tmp_path):
    plain_id, hostile_id = _search(env, "plain"), _search(env, HOSTILE)
    plain, hostile = tmp_path / "plain.py", tmp_path / "hostile.py"
    nas(env, "export", "best", "--search", plain_id, "-o", str(plain))
    nas(env, "export", "best", "--search", hostile_id, "-o", str(hostile))
    plain_code, plain_title = _without_source(plain.read_text())
    hostile_code, hostile_title = _without_source(hostile.read_text())
    assert plain_code == hostile_code  # only the line(s) naming the source differ
    assert "plain" in plain_title and "evil" in hostile_title
    module = _import(hostile)
    assert HOSTILE in module.SOURCE and hostile_id in module.SOURCE
    assert module.build_model().eval()(
        __import__("torch").zeros(1, module.IN_CHANNELS, module.INPUT_SIZE, module.INPUT_SIZE)
    ).shape == (1, module.NUM_CLASSES)


@pytest.mark.parametrize("size", ["0", "-5", "1", "7"])
def test_export_input_size_too_small_says_the_minimum(env, tmp_path, size):
    search_id = _search(env, "plain")
    output = tmp_path / "model.py"
    result = nas(env, "export", "best", "--search", search_id, "-o", str(output),
                 "--input-size", size, check=False)
    assert_user_error(result, "input_size", "from 8 to 2048")
    assert not output.exists()


@pytest.mark.parametrize(("flag", "value", "name"), [
    ("--channels", "100000", "channels"), ("--input-size", "100000", "input_size"),
    ("--num-classes", "100000000000", "num_classes"), ("--cells", "1000", "cells")])
def test_export_settings_beyond_their_range_say_it_not_a_memory_traceback(env, tmp_path, flag,
                                                                          value, name):
    search_id = _search(env, "plain")
    output = tmp_path / "model.py"
    result = nas(env, "export", "best", "--search", search_id, "-o", str(output), flag, value,
                 check=False)
    assert_user_error(result, name, "an integer from")
    assert not output.exists()


def test_a_search_configs_input_size_beyond_its_range_stores_nothing(env, tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text("evaluator: {name: standalone}\ndataset: {name: digits, "
                      "input_size: 100000}\nbudget: {architectures: 2}\n")
    assert_user_error(nas(env, "search", "-c", str(config), check=False), "input_size",
                      "less than or equal to 2048")
    assert searches(env) == 0


def test_a_genotype_file_with_too_many_blocks_is_one_line(env, tmp_path):
    block = [0, "identity", 1, "identity"]
    genotype = tmp_path / "big.json"
    genotype.write_text(json.dumps({"normal": [block] * 20_000, "reduction": [block]}))
    result = nas(env, "train", "--arch", str(genotype), "--epochs", "1", check=False)
    assert_user_error(result, "normal cell: has 20000 blocks, at most 64")


def test_onnx_export_json_is_the_only_thing_on_stdout(env, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    search_id = _search(env, "plain")
    output = tmp_path / "model.onnx"
    out = nas(env, "export", "best", "--search", search_id, "-o", str(output), "--format",
              "onnx", "--json")
    summary = json.loads(out.stdout)
    assert summary["format"] == "onnx" and output.is_file()


# -------------------------------------------------------------------------------------------
# datasets


def test_a_folder_of_files_that_are_not_images_fails_before_the_search(env, tmp_path):
    root = tmp_path / "images"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for index in range(3):
            (root / name / f"{index}.png").write_bytes(os.urandom(512))
    result = nas(env, "search", "--evaluator", "standalone", "--dataset", "imagefolder",
                 "--data-dir", str(root), "--budget-architectures", "2", check=False)
    assert_user_error(result, "cannot decode image", str(root / "cats" / "0.png"))
    assert searches(env) == 0


def _png_claiming(path, width, height):
    """A small valid PNG whose header claims `width` x `height` pixels (a decompression bomb's
    header, without the memory it would take to write one)."""
    import struct
    import zlib

    from PIL import Image

    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))


def _image_folder(root, classes=("cats", "dogs"), images=3):
    from PIL import Image

    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(images):
            Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(root / name / f"{index}.png")


def test_an_image_beyond_pils_decompression_bomb_limit_is_one_line(env, tmp_path):
    root = tmp_path / "images"
    _image_folder(root)
    _png_claiming(root / "dogs" / "0.png", 20_000, 20_000)
    result = nas(env, "search", "--evaluator", "standalone", "--dataset", "imagefolder",
                 "--data-dir", str(root), "--budget-architectures", "2", check=False)
    assert_user_error(result, "cannot decode image", str(root / "dogs" / "0.png"))
    assert searches(env) == 0


@pytest.mark.parametrize("link", ["loop", "copy"])
def test_a_symlink_back_into_the_image_folder_is_refused_naming_it(env, tmp_path, link):
    """A link to the folder itself was walked for ever (the search hung); one to another class
    labelled that class's images as the link's class, in both splits."""
    root = tmp_path / "images"
    _image_folder(root)
    (root / "cats" / "up").symlink_to(".." if link == "loop" else "../dogs")
    result = nas(env, "search", "--evaluator", "standalone", "--dataset", "imagefolder",
                 "--data-dir", str(root), "--budget-architectures", "2", check=False)
    assert_user_error(result, str(root / "cats" / "up"), "a loop or a second copy")
    assert searches(env) == 0


@pytest.mark.parametrize(("level", "shown"), [("debug", "DEBUG alembic"),
                                              ("Info", "INFO nas.search")])
def test_nas_log_level_takes_any_case(env, level, shown):
    result = nas({**env, "NAS_LOG_LEVEL": level}, "search", *SYNTHETIC, "--json")
    assert "Traceback" not in result.stderr
    assert shown in result.stderr


def test_a_bad_nas_log_level_is_one_line(env):
    result = nas({**env, "NAS_LOG_LEVEL": "loud"}, "search", *SYNTHETIC, check=False)
    assert_user_error(result, "NAS_LOG_LEVEL='loud'", "DEBUG, INFO, WARNING")
    assert searches(env) == 0


def test_a_genotype_file_with_a_key_twice_is_refused(env, tmp_path):
    genotype = tmp_path / "twice.json"  # the second, empty normal cell would silently win
    genotype.write_text('{"normal": [[0, "identity", 1, "identity"]], "normal": [], '
                        '"reduction": [[0, "identity", 1, "identity"]]}')
    result = nas(env, "train", "--arch", str(genotype), "--epochs", "1", check=False)
    assert_user_error(result, "key 'normal' given twice")


@pytest.mark.parametrize("command", ["search", "train"])
def test_a_binary_config_or_genotype_file_is_named(env, tmp_path, command):
    garbage = tmp_path / ("garbage.yaml" if command == "search" else "garbage.json")
    garbage.write_bytes(b"\xa8\xff\x00binary" * 20)
    flag = "-c" if command == "search" else "--arch"
    result = nas(env, command, flag, str(garbage), check=False)
    assert_user_error(result, str(garbage), "not UTF-8 text")
    assert searches(env) == 0


def test_export_paths_that_cannot_be_written_say_which_and_why(env, tmp_path):
    search_id = _search(env, "plain")
    (tmp_path / "afile").write_text("not a folder")
    result = nas(env, "export", "best", "--search", search_id, "-o",
                 str(tmp_path / "afile" / "best.py"), check=False)
    assert_user_error(result, f"cannot write {tmp_path / 'afile' / 'best.py'}",
                      "a file stands where a folder")
    result = nas(env, "export", "best", "--search", search_id, "-o", "/dev/full", check=False)
    assert_user_error(result, "cannot write /dev/full", "No space left on device")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    result = nas(env, "export", "best", "--search", search_id, "-o", str(tmp_path / "w.py"),
                 "--weights", str(empty), check=False)
    assert_user_error(result, f"cannot read weights {empty}: the file is empty")


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("NAS_RESUME_LIMIT", "2.7", "NAS_RESUME_LIMIT must be a whole number of resumes, got '2.7'"),
    ("NAS_HEARTBEAT_SECONDS", "soon", "NAS_HEARTBEAT_SECONDS must be a number, got 'soon'"),
])
def test_a_bad_ownership_setting_stores_no_search(env, variable, value, message):
    result = nas({**env, variable: value}, "search", *SYNTHETIC, check=False)
    assert_user_error(result, message)  # it said so, but after queueing a search it never ran
    assert searches(env) == 0


def test_ctrl_c_while_the_command_starts_exits_130_without_a_traceback(env):
    """A SIGINT while torch loads (sent once torch's library is mapped into the process)."""
    command = subprocess.Popen(
        [sys.executable, "-c", "from nas.cli import main; main()", "search", *SYNTHETIC],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run started in the background ignores SIGINT, and a
        # process that starts with SIGINT ignored keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    maps, deadline = Path(f"/proc/{command.pid}/maps"), time.monotonic() + 120
    while "libtorch" not in maps.read_text():
        assert command.poll() is None and time.monotonic() < deadline, command.returncode
        time.sleep(0.005)
    command.send_signal(signal.SIGINT)
    _, stderr = command.communicate(timeout=120)
    assert command.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert searches(env) == 0  # it stopped before anything was stored


def test_a_data_folder_for_a_dataset_that_reads_none_is_refused(env, tmp_path):
    """`--data-dir ~/cifar` without `--dataset cifar10` trained on digits without a word."""
    result = nas(env, "train", "--arch", "lenet5", "--epochs", "1", "--data-dir", str(tmp_path),
                 check=False)
    assert_user_error(result, "dataset digits reads no files", str(tmp_path),
                      "cifar10 or imagefolder")
    config = tmp_path / "search.yaml"
    config.write_text(f"dataset: {{name: digits, path: {tmp_path}}}\n")
    assert_user_error(nas(env, "search", "-c", str(config), check=False),
                      "dataset digits reads no files")
    assert searches(env) == 0


def test_an_unknown_op_in_a_genotype_file_names_the_file(env, tmp_path):
    genotype = tmp_path / "cell.json"
    genotype.write_text('{"normal": [[0, "conv_99x99", 1, "identity"]], '
                        '"reduction": [[0, "identity", 1, "identity"]]}')
    result = nas(env, "train", "--arch", str(genotype), "--epochs", "1", check=False)
    assert_user_error(result, f"{genotype}: unknown op 'conv_99x99'; choose one of")
