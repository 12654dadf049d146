"""The help overlay (F1 or ?): what this step does and its keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

from wizard_steps.core.i18n import N_, _


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", N_("Close help"))]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # markdown-it is slow to import: only when shown

        with VerticalScroll(id="help-dialog"):
            yield Markdown(self.markdown)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True for yes."""

    BINDINGS = [Binding("y,e", "answer(True)", N_("Yes")),  # e / h: evet / hayır in Turkish
                Binding("n,h,escape", "answer(False)", N_("No"))]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        from textual.widgets import Static

        with VerticalScroll(id="confirm-dialog"):
            yield Static(f"{self.question}\n\n" + _("[b]y[/b] yes · [b]n[/b] no"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
