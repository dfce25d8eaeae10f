"""Issue 14, item 5: a preset fills the options left out on the command line; an option typed
there wins, even when its value equals the parser's default."""

from impasto.cli import build_parser
from impasto.commands.semantic import apply_preset, given_on_command_line


def _args(tmp_path, *options):
    preset = tmp_path / "p.yaml"
    preset.write_text("size: 256\niterations: 80\ninit: noise\ntv_weight: 30\nkeep_outside: true\n")
    argv = ["--content", "c.jpg", "--style", "s.jpg", "--preset", str(preset), "-o", "o.png", *options]
    args = build_parser().parse_args(["optimize", *argv])
    args.argv = argv
    apply_preset(args, args.optimize_parser)
    return args


def test_options_typed_on_the_command_line_win_even_at_their_default(tmp_path):
    args = _args(tmp_path, "--size", "512", "--init=content", "--tv-weight", "1")
    assert (args.size, args.init, args.tv_weight) == (512, "content", 1.0)   # 512 and content are the defaults
    assert args.iterations == 80 and args.keep_outside is True             # not typed: the preset's


def test_the_preset_fills_what_was_not_typed(tmp_path):
    args = _args(tmp_path)
    assert (args.size, args.iterations, args.init, args.tv_weight) == (256, 80, "noise", 30)


def test_given_on_command_line_sees_repeated_and_flag_options():
    p = build_parser().parse_args(["optimize", "--content", "c", "--style", "s", "-o", "o"]).optimize_parser
    given = given_on_command_line(p, ["--style", "a", "--style", "b", "--keep-outside", "--size", "512", "-o", "x"])
    assert given == {"style", "keep_outside", "size", "output"}


def test_the_cli_hands_the_command_its_own_arguments(tmp_path, monkeypatch):
    import impasto.commands.semantic as semantic
    from impasto.cli import main
    seen = {}
    monkeypatch.setattr(semantic, "run", lambda args: seen.setdefault("args", args) and 0)
    preset = tmp_path / "p.yaml"
    preset.write_text("size: 256\niterations: 80\n")
    main(["optimize", "--content", "c.jpg", "--style", "s.jpg", "--preset", str(preset), "--size", "512",
          "-o", "o.png"])
    assert (seen["args"].size, seen["args"].iterations) == (512, 80)
