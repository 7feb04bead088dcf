"""What the data owner reads before approving a job, shown as it is: every character that a terminal
would act on or that would not be seen — control characters (C0 but newline and tab, DEL, C1),
bidirectional overrides and isolates ("Trojan Source", CVE-2021-42574), zero-width and other format
characters, line and paragraph separators, and the other default-ignorable code points — is written
as an escape (`\\x1b`, `\\u202e`) instead, so that a line that acts is never displayed as a comment.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) that are not already
# of category Cf: drawn as nothing, so a reader cannot see them (Hangul fillers, variation selectors…)
_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
              (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
              (0xE0000, 0xE0FFF))  # fmt: skip
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def hidden(ch: str) -> bool:
    """Whether a character would act on the terminal or not be seen, rather than show as itself."""
    if ch in "\n\t":
        return False
    if unicodedata.category(ch) in _HIDDEN_CATEGORIES:
        return True
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _IGNORABLE)


def escape(ch: str) -> str:
    """A character's escape as Python writes it: `\\r`, `\\x1b`, `\\u202e`, `\\U000e0041`."""
    if ch == "\r":
        return "\\r"
    cp = ord(ch)
    return f"\\x{cp:02x}" if cp <= 0xFF else f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def segments(text: str) -> list[tuple[str, bool]]:
    """`text` as runs of (shown text, escaped?): plain runs as they are, hidden characters escaped."""
    out: list[tuple[str, bool]] = []
    plain: list[str] = []
    for ch in text:
        if hidden(ch):
            if plain:
                out.append(("".join(plain), False))
                plain = []
            out.append((escape(ch), True))
        else:
            plain.append(ch)
    if plain:
        out.append(("".join(plain), False))
    return out


def reveal(text: str) -> str:
    """`text` with every hidden character written as its escape."""
    return "".join(s for s, _ in segments(text))


@dataclass(frozen=True)
class Finding:
    """A hidden character: where it is (line and column from 1) and which it is."""

    line: int
    column: int
    char: str

    def __str__(self) -> str:
        kind = {"Cc": "control character", "Cn": "unassigned", "Co": "private use", "Cs": "surrogate"}
        name = unicodedata.name(self.char, "") or kind.get(unicodedata.category(self.char), "")
        return f"line {self.line}, column {self.column}: {escape(self.char)} {name}"


def findings(text: str) -> list[Finding]:
    """Every hidden character of `text`, in order."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        out += [Finding(n, c, ch) for c, ch in enumerate(line, 1) if hidden(ch)]
    return out
