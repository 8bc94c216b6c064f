"""lib/rtmp/limits.py as a unit: what characters a client's names may hold (issue 20 point 6).

Names are shown in logs, the API, file names and players: besides control characters (C0,
DEL, C1), characters that change how text around them is displayed or that show nothing
(Unicode format characters such as U+202E RIGHT-TO-LEFT OVERRIDE, other bidi controls,
zero-width and other invisible characters, line/paragraph separators, spaces other than
U+0020) are refused, and escaped where an error quotes a peer's value.
"""
import pytest

from lib.rtmp.limits import LOG_CHARS, LimitError, check_text, clip

REFUSED = [
    "\u202e",      # RIGHT-TO-LEFT OVERRIDE (Cf): "live\u202egnp.ts" shows as "livest.png"
    "\u202a", "\u202d", "\u2066", "\u2069",      # other bidi embeddings, overrides, isolates
    "\u200e", "\u200f", "\u061c",                # LRM, RLM, ARABIC LETTER MARK
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad",   # zero width, BOM, soft hyphen
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A (Cf, invisible)
    "\u2028", "\u2029",                          # line / paragraph separator (Zl, Zp)
    "\u00a0", "\u3000", "\u2007",                # spaces other than U+0020 (Zs)
    "\u3164", "\u115f", "\u034f", "\ufe0f",      # invisible letters and joiners (Default_Ignorable)
    "\x85", "\x9b",                              # C1 (as before)
]


@pytest.mark.parametrize("char", REFUSED)
def test_invisible_and_format_characters_are_refused(char):
    with pytest.raises(LimitError) as info:
        check_text("stream", f"live{char}stream", 100)
    assert "at offset 4" in str(info.value)
    assert char not in str(info.value)           # the error never holds the character itself


@pytest.mark.parametrize("name", ["livestream", "直播", "трансляция", "café-é", "a b",
                                  "emoji-\U0001f3a5", "e\u0301", "ﻼ"])
def test_visible_names_pass(name):
    check_text("stream", name, 100)


def test_the_error_names_the_code_point():
    with pytest.raises(LimitError, match="U\\+202E at offset 3"):
        check_text("app", "abc\u202edef", 100)
    with pytest.raises(LimitError, match="control character 0x0a at offset 1"):
        check_text("app", "a\nb", 100)


def test_clip_escapes_what_names_may_not_hold():
    assert clip("play a\u202eb\u200bc\nd") == "play a\\u202eb\\u200bc\\x0ad"
    huge = "\u202e" * 100000
    shown = clip(huge)
    assert "\u202e" not in shown and len(shown) < LOG_CHARS + 40 and shown.endswith("(100000 characters)")
