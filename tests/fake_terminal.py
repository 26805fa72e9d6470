"""A stream that says it is a terminal, and the screen a terminal would show after what was
written to it: carriage returns overwrite the current line from its start, so a progress bar
that was cleared leaves a blank line and one that was not leaves its last state."""
import io


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def screen(self) -> list:
        """The visible lines, blank ones dropped."""
        shown = []
        for line in self.getvalue().split("\n"):
            cells: list = []
            for piece in line.split("\r"):  # each piece overwrites from column 0
                cells[:len(piece)] = piece
            text = "".join(cells).rstrip()
            if text:
                shown.append(text)
        return shown


def redraw_every_update(monkeypatch) -> None:
    """Make tqdm draw at every update: by default it redraws at most every 0.1 s, and the
    tiny runs of the tests finish sooner."""
    import functools

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", functools.partial(tqdm.auto.tqdm, mininterval=0,
                                                             miniters=1))
