"""Which passwords a new account may not use, said in plain words.

Length alone (8 characters) let through ``12345678``, ``password`` and the user's own name. The
estimate is zxcvbn's (Dropbox's guessability model, the ``zxcvbn`` package: frequency lists of
leaked passwords, common words and names, keyboard walks, repeats, sequences, dates, l33t
substitutions), given the user name as a word an attacker knows. A password it scores below
``min_score`` (0-4; 2 means "somewhat guessable": about 10^8 guesses) is refused, and so is any
password that contains the user name or is contained in it, whatever its score.

Checked at sign-up only (an existing account still signs in). The answer never repeats the
password: zxcvbn's warnings are fixed sentences.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

from crowdlearning.ledger import InvalidInputError

__all__ = ["DEFAULT_MIN_SCORE", "WeakPasswordError", "check_new_password"]

DEFAULT_MIN_SCORE = 2
_ESTIMATE_CHARS = 72  # zxcvbn refuses longer input; the first 72 characters decide


class WeakPasswordError(InvalidInputError):
    """A password a new account may not use (the message says why, in words)."""


def check_new_password(password: str, username: str, min_score: int = DEFAULT_MIN_SCORE) -> None:
    """Raise ``WeakPasswordError`` if ``password`` may not be used by ``username``."""
    word, name = password.casefold(), username.casefold()
    if name and (name in word or word in name):
        raise WeakPasswordError("Password must not contain your name")
    result = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=[username])
    if result["score"] < min_score:
        why = (result["feedback"].get("warning") or "This password is easy to guess").rstrip(".")
        raise WeakPasswordError(f"{why}: choose a longer password, for example a few unrelated "
                                "words")
