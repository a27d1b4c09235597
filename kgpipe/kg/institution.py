"""The name of an institution inside a longer name: the words that tell one university from another.

'Department of Computer Science, City University of Hong Kong, Kowloon' names a department, an institution
and a place. Word overlap alone cannot tell 'City University of Hong Kong' from 'University of Hong Kong'
(all words of the second are in the first), nor 'Columbia University' from 'University of British
Columbia'. An institution phrase is a head word (University, Universitat, ...) with its modifiers: the words
before the head in its part ('City', 'Arizona State'), the words of its 'of' phrase ('Hong Kong', 'British
Columbia'), and a qualifier after 'at' or 'in' ('University of Texas at Arlington'); words right after the
head without 'of' are left out ('Stanford University InfoLab'). The scorer
(kgpipe.kg.similarity.institutions_differ) reads two names whose phrases share a head as different
institutions when a modifier of one is a word the other name never says, or when both have qualifiers and
neither name says a word of the other's. One omission is allowed: of two names with the same words before the
head, the one without an 'of' phrase may leave the other's unsaid ('Humboldt University', 'Humboldt
University of Berlin').

>>> institution_core("Computer Science Dept., City Univ. of Hong Kong, Kowloon")
InstitutionPhrase(head='university', pre=('city',), post=('hong', 'kong'), qualifier=())
>>> institution_core("The University of Texas at Arlington, Arlington, TX").qualifier
('arlington',)
>>> institution_core("Department of Computer Science University of Maryland, College Park").pre
()
>>> institution_core("IBM Almaden Research Center") is None
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kgpipe.kg.normalize import DEFAULT_OPTIONS, NormalizeOptions, name_parts

# head word (as normalised) -> its class: heads of one class are comparable
DEFAULT_HEADS: dict[str, str] = {
    "university": "university", "universitat": "university", "universite": "university",
    "universidad": "university", "universita": "university", "universiteit": "university",
    "universidade": "university", "universitet": "university", "universiti": "university",
}
# words that start a sub-unit's name: modifiers before the head are the unit's, not the institution's
# ('Department of Computer Science University of Maryland')
DEFAULT_UNIT_WORDS: tuple[str, ...] = (
    "department", "school", "faculty", "division", "laboratory", "group", "institute", "center", "college",
    "program", "chair", "lehrstuhl", "fachbereich", "dipartimento", "departamento", "departement", "unit",
    "section", "graduate",
)
_OF = ("of", "de", "di", "del", "della", "degli", "do", "da", "dos", "das", "des", "du", "der", "zu", "van", "von")
_AT = ("at", "in")


@dataclass(frozen=True)
class InstitutionPhrase:
    """The first institution phrase of a name: its head's class and the words that modify the head."""

    head: str                      # class of the head word ('university')
    pre: tuple[str, ...]           # modifiers before the head in its part ('city', 'arizona state')
    post: tuple[str, ...]          # words of its 'of' phrase ('hong kong', 'british columbia')
    qualifier: tuple[str, ...]     # after 'at' or 'in' ('University of Texas at Arlington')


def institution_core(text: str, options: NormalizeOptions = DEFAULT_OPTIONS,
                     heads: Mapping[str, str] | None = None,
                     unit_words: Sequence[str] = DEFAULT_UNIT_WORDS) -> InstitutionPhrase | None:
    """The first institution phrase of a name, or None when no part has a head word. Stopwords and head
    words are left out of its word lists."""
    heads = DEFAULT_HEADS if heads is None else heads
    stop = options.stopword_set
    units = set(unit_words)
    for _, words in name_parts(text, options):
        at = next((i for i, w in enumerate(words) if w in heads), None)
        if at is None:
            continue
        before = words[:at]
        # the modifiers next to the head, back to a stopword or the part's start; none when the part names a
        # unit before the head (they are the unit's words)
        start = at
        while start > 0 and before[start - 1] not in stop:
            start -= 1
        pre = [] if units & set(before) else before[start:]
        after = words[at + 1:]
        post: list[str] = []
        qualifier: list[str] = []
        if after and after[0] in _OF:
            rest = after[1:]
            cut = next((i for i, w in enumerate(rest) if w in _AT), len(rest))
            post, qualifier = rest[:cut], rest[cut + 1:]
        elif after and after[0] in _AT:
            qualifier = after[1:]

        def clean(found: list[str]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(w for w in found if w not in stop and w not in heads))

        return InstitutionPhrase(heads[words[at]], clean(pre), clean(post), clean(qualifier))
    return None
