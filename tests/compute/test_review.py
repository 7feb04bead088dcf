"""What the owner reads before approving shows every character that would act on a terminal or not be
seen, escaped: a line that writes a payload cannot pass for a comment."""

from qdsn.compute import review


def test_controls_bidi_and_invisible_characters_are_escaped():
    attacks = {
        "payload()\x1b[2K\r# harmless": "payload()\\x1b[2K\\r# harmless",  # erase the line, back to its start
        "\x1b]8;;https://x\x07link\x1b]8;;\x07": "\\x1b]8;;https://x\\x07link\\x1b]8;;\\x07",  # OSC
        "\x9b2K": "\\x9b2K",  # C1 CSI
        "x\x7f\x00": "x\\x7f\\x00",
        "'user\u202e \u2066// admin\u2069 \u2066'": "'user\\u202e \\u2066// admin\\u2069 \\u2066'",  # Trojan Source
        "a\u200bb\u200d\ufeffc\u00ad": "a\\u200bb\\u200d\\ufeffc\\xad",  # zero-width, BOM, soft hyphen
        "x = 1\u2028y = 2": "x = 1\\u2028y = 2",  # a line separator a terminal does not break at
        "\u3164 = 1\ufe0f\U000e0041": "\\u3164 = 1\\ufe0f\\U000e0041",  # a Hangul filler, variation and tag chars
    }
    for text, shown in attacks.items():
        assert review.reveal(text) == shown
    plain = "def main():\n\tprint('合格率 ≥ 99 % — [red]ok[/]')\n"
    assert review.reveal(plain) == plain and review.findings(plain) == []  # tabs, newlines, CJK and markup stay


def test_segments_mark_what_was_escaped_and_findings_say_where():
    assert review.segments("a\x1bb") == [("a", False), ("\\x1b", True), ("b", False)]
    found = review.findings("ok\nx = 'a\u202eb'  # \u200b\n")
    assert [(f.line, f.column) for f in found] == [(2, 7), (2, 14)]
    assert str(found[0]) == "line 2, column 7: \\u202e RIGHT-TO-LEFT OVERRIDE"
