"""A griffe extension for the API reference: fence the doctest examples of docstrings.

tracegrad's docstrings hold plain doctest examples (``>>>`` lines, as pytest runs them);
Markdown would read them as nested quotes, so each run of lines from a ``>>>`` line to
the next blank line becomes a ```` ```pycon ```` block.
"""
import griffe


def fence_doctests(text):
    """Wrap each doctest example (a ``>>>`` line up to a blank line) in a pycon fence."""
    out, inside = [], False
    for line in text.splitlines():
        if not inside and line.lstrip().startswith(">>>"):
            out.append("```pycon")
            inside = True
        elif inside and not line.strip():
            out.append("```")
            inside = False
        out.append(line)
    if inside:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
