"""A multi-turn chat that keeps its KV cache between turns (``Chat`` passing itself as the session,
as the wizard does) against the same conversation fed whole at every turn (no session, as before),
side by side in one run: two loads of the folder in one process (a backend keeps one session's
cache), the two conversations alternating turn by turn, greedy, each going on from the same
words. Prints each turn's time to the first token, the tokens fed, the ratio, and whether the
two replies were the same words (a quantized model's may differ in a near tie: the cached tokens
were computed one at a time, the fresh ones in a piece).

    .venv/bin/python benchmarks/chat_turns.py FOLDER [--turns 10] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wizard_steps.prompt.templates import Conversation, get_preset
from wizard_steps.runtime.engine import Chat, GenaiBackend, ReplyDone, ReplyOptions

QUESTIONS = ("What is the capital of France?", "And of Germany?", "Name three colours.",
             "Write one sentence about the sea.", "Who wrote Hamlet?", "Say hello in Spanish.",
             "What is a prime number?", "Give me a word that rhymes with cat.",
             "How many legs does a spider have?", "What colour is the sky?", "What is 2 + 2?",
             "Name a large animal.")
SYSTEM = "You are a helpful assistant. Answer briefly."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    preset = get_preset("chatml")
    backend, other = (GenaiBackend(args.folder, preset.template) for _ in range(2))
    options = ReplyOptions(max_new_tokens=args.new_tokens, stop=preset.stop)
    kept = Chat(backend, options, system=SYSTEM)
    fresh_turns: list[tuple[str, str]] = []
    ratios, same = [], 0
    print(f"{'turn':>4} {'prompt':>6} {'fed kept':>8} {'TTFT kept ms':>12} {'TTFT whole ms':>13} "
          f"{'x':>6}  same words")
    for turn in range(args.turns):
        question = QUESTIONS[turn % len(QUESTIONS)]
        mine = next(e for e in kept.send(question) if isinstance(e, ReplyDone))
        asked = Conversation(SYSTEM, (*fresh_turns, ("user", question)))
        whole = next(e for e in other.stream(asked, options) if isinstance(e, ReplyDone))
        fresh_turns += [("user", question), ("assistant", whole.text)]
        kept.turns[-1] = ("assistant", whole.text)  # both go on from the same words
        ratio = mine.stats.ttft_s / whole.stats.ttft_s
        ratios.append(ratio)
        same += mine.text == whole.text
        fed = mine.stats.prompt_tokens - mine.stats.cached_tokens
        print(f"{turn + 1:>4} {mine.stats.prompt_tokens:>6} {fed:>8} "
              f"{mine.stats.ttft_s * 1000:>12.1f} {whole.stats.ttft_s * 1000:>13.1f} {ratio:>6.2f}  "
              f"{mine.text == whole.text}")
    later = ratios[1:]
    print(f"turns 2-{args.turns}: time to first token x{statistics.median(later):.2f} (median; "
          f"min {min(later):.2f}, max {max(later):.2f}); the same words in {same} of {args.turns} replies")
    backend.close()
    other.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
