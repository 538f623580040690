"""Rules that read the answer out of a free-form model response, where an official benchmark evaluation asks GPT-4
(MathVista's ``extract_answer``): mmrft's own, none of them official. Rules, in order:

1. CJK text: full-width forms (``（Ｂ）``, ``１２``) become ASCII, the full-width punctuation ``，；：！？。、`` the
   ASCII mark and a space, and a space is put between a CJK character and a Latin letter or digit (``答案是B`` ->
   ``答案是 B``), so that the word- and clause-boundary rules below apply to Chinese sentences.
2. The answer span: the content of the last ``\\boxed{}``; else the text after the last explicit answer
   statement, up to the end of its line or sentence (the next line if nothing follows on its line); else the last
   line.  Answer statements: English ``answer is`` / ``answer:`` / ``answer =``, also with a modal verb (``the
   answer would be`` / ``should be`` / ``might be`` / ``seems to be`` ...), and Chinese ``答案是`` / ``答案为`` /
   ``答案：``, also hedged (``答案应该是``, ``答案可能是``), and ``故选`` / ``所以选`` / ``应选``.  Hedge words left in the
   span (``probably B``, ``approximately 3.5 cm``) are harmless: the letter and number rules ignore other words.
3. By question type (applied by the adapter: MathVista's ``_rule_extract``).  multi_choice: the span itself if it is an option text; else the options it names
   (:func:`mmrft.rewards.choice.named_options`: letters ``B`` / ``(B)`` / ``option B``, or option texts): one
   named option is the answer, two or more are no answer, except that options named only in a justification
   (rule 4b's markers) do not count (``A, since 360 - 122 - 141 = 97`` names A); else, when the span states a
   number (rule 4) and exactly one option's text is that number with or without a unit (``12`` or ``12
   centimeters`` for the option ``12 cm``), that option; else the span, for the edit-distance step of
   ``normalize_extracted_answer``.  integer / float: the number of rule 4.  list: the numbers of the last
   ``[...]`` of the span (else of the whole span).
4. Which number of the span is the answer (:func:`answer_number`).  The default is the last number, as an answer
   usually ends a derivation (``0.86 + 0.59 = 1.45``); numbers that only qualify a value already stated are set
   aside first, by surface markers:

   a. remarks: a parenthesised group with a digit and more than a bare number (``1.45 (0.86 + 0.59)``, ``3.14
      (using r = 1)``) is dropped, unless no digit would be left; a restated value (``3:4 (0.75)``) stays;
   b. justifications: after a stated number, ``because`` / ``since`` / ``given that`` / ``因为`` / ``由于`` and the
      rest of its sentence are dropped (``7 years, since he is 45 and she is 38`` -> 7), except a later clause of
      the sentence that draws a conclusion (rule c's markers: ``x = 3 because 2x = 6, and the perimeter is 4x + 2
      = 14`` -> 14);
   c. conclusions: only the text after the last ``so`` / ``therefore`` / ``thus`` / ``hence`` / ``in total`` /
      ``altogether`` / ``=`` / ``≈`` / ``所以`` / ``因此`` / ``总共`` / ``一共`` that a number follows is read (``7
      apples; 2 were eaten, so 5 are left`` -> 5);
   d. breakdowns and comparisons: after a stated number, a clause (between ``, ; :`` and sentence ends) with ``of
      which`` / ``of them`` / ``of these`` / ``among them`` / ``including`` / ``such as`` / ``for example`` /
      ``其中`` / ``包括`` / ``例如`` is dropped with the rest of its sentence (``There are 5 apples, 2 of which are
      green.`` -> 5), unless it uses a modifier or qualifier of the counted noun (rule e), i.e. it describes the
      count asked for ("How many green apples ...?" keeps ``2 of which are green``); and ``than`` / ``twice`` /
      ``double`` / ``triple`` / ``half of`` / ``compared to`` after a number is dropped with the rest of its
      sentence (``There are 3 bars with values larger than 6`` -> 3; ``about 3.5 cm, compared to 10 cm for the
      ruler`` -> 3.5);
   e. the counted noun, for questions "how many [modifiers] <plural noun> [qualifiers]?" (``How many red cubes are
      left?``: noun ``cubes``, modifier ``red``, qualifier ``left``; the noun is the first word ending in -s, or an
      irregular plural, within four words of "how many"): when the last number counts something else (a word
      other than a function word follows it: ``2 pears``, ``2 green``), the last number *attached* to the counted
      noun is the answer instead: the noun follows it with all the modifiers and at most two other words between
      (``5 apples``, ``3 big red cubes``; not ``2 of the apples``), or the modifiers alone follow it (``3 red``),
      and with qualifiers its clause uses one (``There are 5 apples and 2 pears.`` -> 5 for "How many apples are
      there?"; ``So far 3 apples; adding 2 gives 5`` -> 5);
   f. otherwise, the last number of what is left.

   Limits: these are English (and a few Chinese) surface patterns, not a parse.  A distractor after the answer
   with none of these markers still wins as the last number (``The total is 12, with 3 per row`` -> 3); a count
   asked in Chinese (``几个``) has no counted-noun rule; a conclusion marker followed by a distractor (``so 2 of
   them are green``) reads the distractor; a breakdown that answers the question but shares no word with it is
   dropped; and the noun test is a spelling heuristic (``glass``-like singulars are skipped, ``news``/``series``
   are taken as plurals).
"""

from __future__ import annotations

import bisect
import math
import re
from typing import Optional

from mmrft.rewards.extract import extract_answer, last_boxed
from mmrft.rewards.numeric import parse_number

__all__ = ["cjk_normalize", "answer_span", "answer_number", "option_by_value", "JUSTIFICATION_RE"]



# rule 1: CJK text
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_FULLWIDTH = {0xFF01 + i: chr(0x21 + i) for i in range(94)}  # ！..～ -> !..~ (letters, digits, brackets)
_FULLWIDTH.update({ord(c): _FULLWIDTH[ord(c)] + " " for c in "，；：！？"})  # a clause mark keeps its space
_FULLWIDTH.update({0x3000: " ", ord("。"): ". ", ord("、"): ", "})
_CJK_GAP_RE = re.compile(rf"(?<=[{_CJK}])(?=[A-Za-z0-9($\\-])|(?<=[A-Za-z0-9)%])(?=[{_CJK}])")


def cjk_normalize(text: str) -> str:
    """Rule 1: full-width forms to ASCII, a space between CJK characters and Latin letters / digits."""
    return _CJK_GAP_RE.sub(" ", text.translate(_FULLWIDTH))


# rule 2: the answer span
_MODALS = r"is|would be|should be|must be|will be|could be|might be|may be|seems to be|appears to be"
_STATEMENT_RE = re.compile(
    rf"(?:\banswer\b(?:\*\*|[ \t])*(?:(?:{_MODALS})\b|[:=])"  # "the answer is", "Answer:", "answer would be"
    r"|答案[ \t]*(?:应该|应当|应|可能|大概|也许|或许)?[ \t]*(?:是|为|:|=)"  # 答案是 / 答案为 / 答案: / 答案可能是
    r"|(?:故|所以|因此|则|应)[ \t]*选)"  # 故选 B
    r"(?:\*\*|[ \t:])*",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"\.\s")


def _clean(span: Optional[str]) -> Optional[str]:
    """Strip whitespace, markdown ``*`` and trailing periods (as :func:`~mmrft.rewards.extract.extract_answer`)."""
    prev = None
    while span is not None and prev != span:
        prev = span
        span = span.strip().strip("*").rstrip(".")
    return span or None


def _statement(text: str) -> Optional[str]:
    """The text after the last answer statement, to the end of its line or first sentence (else the next line)."""
    last = None
    for last in _STATEMENT_RE.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end():]
    line, _, after = rest.partition("\n")
    if not line.strip():
        line = next((candidate for candidate in after.split("\n") if candidate.strip()), "")
    cut = _SENTENCE_END_RE.search(line)
    return _clean(line[: cut.start()] if cut else line)


def answer_span(text: str) -> Optional[str]:
    """Rule 2: the last ``\\boxed{}``, else the last answer statement, else the last line."""
    if last_boxed(text) is None:
        found = _statement(text)
        if found is not None:
            return found
    return extract_answer(text)  # the boxed content, or (no statement) the last line


# rule 4: which number
_DIGIT_RE = re.compile(r"\d")
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])[-+]?\.\d+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*")
_REMARK_RE = re.compile(r"\(([^()]*)\)")
_BARE_NUMBER_RE = re.compile(r"\s*[-+]?[\d.,]+\s*%?\s*")
JUSTIFICATION_RE = re.compile(r"\b(?:because|since|given that)\b|因为|由于", re.IGNORECASE)
_CONCLUSION_RE = re.compile(r"\b(?:so|therefore|thus|hence|in total|altogether)\b|=|≈|\\approx|所以|因此|总共|一共",
                            re.IGNORECASE)
_BREAKDOWN_RE = re.compile(  # the clause is a part of what was counted: "2 of which are green"
    r"\b(?:of (?:which|whom|them|these|those)|among (?:them|which|these|those)|including|such as|for example)\b"
    r"|其中|包括|例如",
    re.IGNORECASE,
)
_COMPARISON_RE = re.compile(  # what follows is the quantity compared with: "larger than 6"
    r"\b(?:than|twice|double|triple|half of|compared (?:to|with))\b", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n")
_CLAUSE_RE = re.compile(r"[,;:]\s+")
_HOW_MANY_RE = re.compile(r"\bhow many\s+([^?\n]*)", re.IGNORECASE)
_IRREGULAR_PLURALS = {"people": "person", "children": "child", "men": "man", "women": "woman", "feet": "foot",
                      "teeth": "tooth", "mice": "mouse", "geese": "goose"}
_NOT_BETWEEN = {"of", "which", "whom", "than", "out", "per"}  # "2 of the apples" is not "2 apples"
_LOOKAHEAD = 200  # characters read after a number for the words that follow it
_FUNCTION_WORDS = {  # words after a number that do not make it a count of something ("5 are left")
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "am", "have", "has", "had", "do", "does", "did",
    "will", "would", "can", "could", "in", "on", "at", "to", "from", "of", "and", "or", "but", "so", "than", "as",
    "by", "for", "with", "total", "altogether", "left", "remain", "remaining", "more", "less", "fewer", "each",
    "which", "that", "who", "whom", "out", "per", "times", "percent", "now", "then", "here", "there",
}
_QUESTION_STOP = {  # question words after the counted noun that do not qualify it
    "a", "an", "the", "this", "that", "these", "those", "there", "here", "is", "are", "was", "were", "be", "been",
    "do", "does", "did", "have", "has", "had", "can", "could", "will", "would", "you", "we", "i", "see", "in", "on",
    "at", "of", "to", "for", "with", "by", "than", "and", "or", "image", "picture", "photo", "figure", "diagram",
    "graph", "chart", "plot", "scene", "shown", "visible", "present", "total", "altogether", "all", "it", "its",
}


class _CountedNoun:
    """Rule 4e: what "how many [modifiers] <plural noun> [qualifiers]?" counts.

    ``forms``: the noun's spellings (``apples``/``apple``, ``boxes``/``box``, ``people``/``person``); ``modifiers``:
    the words before it (``red`` in "how many red cubes"); ``qualifiers``: the question's other content words after
    it (``wearing``, ``hats`` in "How many people are wearing hats?"; ``left`` in "How many objects are left?").
    """

    def __init__(self, forms: set[str], modifiers: list[str], qualifiers: set[str]):
        self.forms, self.modifiers, self.qualifiers = forms, modifiers, qualifiers

    @classmethod
    def of(cls, question: str) -> Optional["_CountedNoun"]:
        m = _HOW_MANY_RE.search(question or "")
        if not m:
            return None
        words = [w.lower() for w in _WORD_RE.findall(m.group(1))]
        for i, word in enumerate(words[:4]):  # the noun is the first plural within 4 words of "how many"
            singular = _IRREGULAR_PLURALS.get(word)
            if singular is None and len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
                singular = word[:-3] + "y" if word.endswith("ies") else word[:-1]
            if singular is not None:
                forms = {word, singular} | ({word[:-2]} if word.endswith("es") else set())
                return cls(forms, words[:i], set(words[i + 1:]) - _QUESTION_STOP)
        return None

    def names_the_count(self, clause: str) -> bool:
        """Whether ``clause`` uses a modifier or qualifier of the question (it describes the asked subset)."""
        return bool((set(self.modifiers) | self.qualifiers) & {w.lower() for w in _WORD_RE.findall(clause)})

    def pick(self, text: str) -> Optional[int]:
        """End of the number that answers the count in ``text``, or ``None`` for rule 4f (the last number).

        A number is *attached* to the counted noun when the noun follows it with all the modifiers and at most two
        other words between (``5 apples``, ``3 big red cubes``; not ``2 of the apples``), or, for a question with
        modifiers, when the modifiers follow it (``3 red``); with qualifiers, its clause must also use one.  The
        last number wins (rule 4f) unless it counts something else, i.e. another word than a function word follows
        it (``2 pears``, ``2 green``): then the last attached number, if there is one.
        """
        numbers = list(_NUMBER_RE.finditer(text))
        if not numbers:
            return None
        starts = _clause_starts(text) if self.qualifiers else []
        attached = [m.end() for m in numbers if self._attached(text, m, starts)]
        last = numbers[-1]
        if attached and attached[-1] == last.end():
            return last.end()
        following = _WORD_RE.match(_words_after(text, last.end()).lstrip())
        if attached and following and following.group().lower() not in _FUNCTION_WORDS:
            return attached[-1]
        return None

    def _attached(self, text: str, m: "re.Match", clause_starts: list[int]) -> bool:
        words = [w.lower() for w in _WORD_RE.findall(_words_after(text, m.end()))][: 3 + len(self.modifiers)]
        attached = bool(self.modifiers) and words[: len(self.modifiers)] == self.modifiers
        for k, word in enumerate(words):
            if word in _NOT_BETWEEN:
                break
            if word in self.forms:
                attached = attached or (k <= 2 + len(self.modifiers) and set(self.modifiers) <= set(words[:k]))
                break
        if not attached or not self.qualifiers:
            return attached
        i = bisect.bisect_right(clause_starts, m.start())
        end = clause_starts[i] if i < len(clause_starts) else len(text)
        return self.names_the_count(text[clause_starts[i - 1]:end])


def _words_after(text: str, pos: int) -> str:
    """The text after ``pos`` up to the next punctuation mark (at most ``_LOOKAHEAD`` characters)."""
    return re.split(r"[.,;:!?()\n]", text[pos:pos + _LOOKAHEAD], maxsplit=1)[0]


def _clause_starts(text: str) -> list[int]:
    """Start offsets of the clauses of ``text`` (split at ``, ; :`` and sentence ends; parentheses ignored)."""
    masked = _REMARK_RE.sub(lambda m: " " * len(m.group()), text)
    return sorted({0} | {b.end() for rx in (_SENTENCE_RE, _CLAUSE_RE) for b in rx.finditer(masked)})


def _sentences(text: str) -> list[tuple[str, str]]:
    """``text`` as (sentence, separator) pairs; joining them gives ``text`` back."""
    out, pos = [], 0
    for m in _SENTENCE_RE.finditer(text):
        out.append((text[pos:m.start()], m.group()))
        pos = m.end()
    out.append((text[pos:], ""))
    return out


def _drop_remarks(text: str) -> str:
    """Rule 4a: parenthesised remarks with a digit and more than a bare number (``(0.86 + 0.59)``, ``(using r =
    1)``; a restated value like ``(0.75)`` stays), unless no digit would be left."""
    def remark(m: "re.Match") -> str:
        inner = m.group(1)
        return " " if _DIGIT_RE.search(inner) and not _BARE_NUMBER_RE.fullmatch(inner) else m.group()

    dropped = _REMARK_RE.sub(remark, text)
    return dropped if _DIGIT_RE.search(dropped) else text


def _drop_justifications(text: str) -> str:
    """Rule 4b: from ``because`` / ``since`` / ... after a stated number to the end of its sentence; a later clause
    of that sentence that draws a conclusion (rule 4c's markers) is kept ("x = 3 because 2x = 6, and the
    perimeter is 4x + 2 = 14")."""
    kept: list[str] = []
    stated = False  # a number was stated before this sentence
    for sentence, sep in _sentences(text):
        m = JUSTIFICATION_RE.search(sentence)
        if m and (stated or _DIGIT_RE.search(sentence, 0, m.start())):
            conclusion = next((c.end() for c in _CLAUSE_RE.finditer(sentence, m.end())
                               if _CONCLUSION_RE.search(sentence, c.end())), None)
            sentence = sentence[: m.start()] + ("" if conclusion is None else " " + sentence[conclusion:])
        stated = stated or bool(_DIGIT_RE.search(sentence))
        kept.append(sentence + sep)
    return "".join(kept)


def _after_last_conclusion(text: str) -> str:
    """Rule 4c: the text after the last conclusion marker that a number follows (else ``text``)."""
    digits = [d.start() for d in _DIGIT_RE.finditer(text)]
    ends = [m.end() for m in _CONCLUSION_RE.finditer(text) if digits and m.end() <= digits[-1]]
    return text[ends[-1]:] if ends else text


def _drop_breakdowns(text: str, counted: Optional[_CountedNoun]) -> str:
    """Rule 4d: after a stated number, a breakdown clause ("2 of which are green") is dropped with the rest of its
    sentence unless it uses a modifier or qualifier of the counted noun, and a comparison ("than 6") is dropped
    from its marker to the end of the sentence."""
    kept: list[str] = []
    stated = False  # a number was stated before the current clause
    for sentence, sep in _sentences(text):
        start = 0
        for end in [c.start() for c in _CLAUSE_RE.finditer(sentence)] + [len(sentence)]:
            clause = sentence[start:end]
            if stated and _BREAKDOWN_RE.search(clause) and not (counted and counted.names_the_count(clause)):
                sentence = sentence[:start]
                break
            comparison = _COMPARISON_RE.search(clause)
            if comparison and (stated or _DIGIT_RE.search(clause, 0, comparison.start())):
                sentence = sentence[: start + comparison.start()]
                break
            stated = stated or bool(_DIGIT_RE.search(clause))
            start = end
        stated = stated or bool(_DIGIT_RE.search(sentence))
        kept.append(sentence + sep)
    return "".join(kept)


def answer_number(span: str, question: str = "") -> Optional[tuple[float, ...]]:
    """Rule 4: the candidate values (as :func:`~mmrft.rewards.numeric.parse_number` gives them) of the number in
    ``span`` that answers ``question``, or ``None`` when the span has no number."""
    counted = _CountedNoun.of(question)
    text = _drop_remarks(span)  # a
    text = _drop_justifications(text)  # b
    text = _after_last_conclusion(text)  # c
    text = _drop_breakdowns(text, counted)  # d
    end = counted.pick(text) if counted else None  # e
    if end is not None and parse_number(text[:end]) is not None:
        return parse_number(text[:end])
    return parse_number(text) or parse_number(span)  # f


def option_by_value(span: str, question: str, options: dict[str, str]) -> Optional[str]:
    """Rule 3: the one option whose text is the span's number, with or without a unit (``12`` for ``12 cm``)."""
    values = answer_number(span, question)
    if values is None:
        return None
    matches = set()
    for letter, text in options.items():
        option_values = parse_number(text) if len(_NUMBER_RE.findall(text)) == 1 else None
        if option_values and any(math.isclose(v, o, rel_tol=1e-9, abs_tol=1e-12)
                                 for v in values for o in option_values):
            matches.add(letter)
    return matches.pop() if len(matches) == 1 else None
