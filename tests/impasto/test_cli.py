"""The command line's help: every option that takes a value shows its default (the real value,
never a name in the code), and the defaults the CLI states without importing the libraries
(to stay fast and torch-free) agree with the libraries' own."""

from __future__ import annotations

import re

import pytest

from impasto import cli
from impasto.commands import compare as compare_command
from impasto.commands import video_options
from impasto.commands.options import MAX_DEFAULT_SIZE, default_size

COMMANDS = [c for c in cli.COMMANDS if c not in ("train", "train_multi")]   # their options are LightningCLI's (--print_config)


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return capsys.readouterr().out


def option_entries(text: str) -> list[str]:
    """Each option's help entry, joined onto one line."""
    entries, current = [], None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            current = [line.strip()]
            entries.append(current)
        elif current is not None and re.match(r"^ {4,}\S", line):
            current.append(line.strip())
        else:
            current = None
    return [" ".join(e) for e in entries]


def required_options(text: str) -> set[str]:
    usage = text.split("\n\n")[0]
    while re.search(r"\[[^\[\]]*\]", usage):
        usage = re.sub(r"\[[^\[\]]*\]", "", usage)
    return set(re.findall(r"(?<![\w-])(-{1,2}[\w-]+)", usage))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_value_shows_its_default(command, capsys):
    text = help_text(command, capsys)
    required = required_options(text)
    missing = []
    for entry in option_entries(text):
        spec = entry.split("  ")[0]
        names = re.findall(r"(?<![\w-])(-{1,2}[\w-]+)", spec)
        takes_value = re.search(r"-[\w-]+ [A-Z{]", spec) is not None
        if takes_value and not (required & set(names)) and "default" not in entry:
            missing.append(entry)
    assert not missing, f"impasto {command} --help: options without a default:\n" + "\n".join(missing)
    assert "explore." not in text and "%(default)" not in text


def test_compare_help_shows_the_column_weights_as_numbers(capsys):
    text = help_text("compare", capsys)
    assert f"(default: {compare_command.HISTOGRAM_WEIGHT})" in text
    assert f"(default: {compare_command.MRF_WEIGHT})" in text


def test_defaults_stated_by_the_cli_match_the_libraries():
    from impasto.compare import explore
    from impasto.serve import video as serve_video
    assert compare_command.HISTOGRAM_WEIGHT == explore.HISTOGRAM_WEIGHT
    assert compare_command.MRF_WEIGHT == explore.MRF_WEIGHT
    assert video_options.DEFAULT_STRENGTH == serve_video.DEFAULT_STRENGTH


def test_export_help_names_every_architecture(capsys):
    from impasto.models.transformer import ARCHITECTURES
    text = " ".join(help_text("export", capsys).split())
    listed = re.search(r"--arch ARCH architecture, when the checkpoint does not say \(([^)]*)\)", text).group(1)
    assert sorted(listed.split(", ")) == sorted(ARCHITECTURES)


def test_optimize_size_defaults_to_the_photo_capped_like_stylize():
    assert default_size(None, 128) == 128                      # a small photo is not upscaled
    assert default_size(None, 3000) == MAX_DEFAULT_SIZE == 512
    assert default_size(300, 128) == 300                       # --size wins
    assert default_size(None, None) == MAX_DEFAULT_SIZE


def test_a_reader_that_stops_reading_ends_the_command_quietly():
    """`impasto train -h | head`: the pipe closes under a long help text; no traceback."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-m", "impasto.cli", "train", "-h"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()   # before the help is written: every write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 1 and "Traceback" not in err and "Broken pipe" not in err, err
