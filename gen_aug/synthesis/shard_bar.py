"""The synthesis bar: images written so far, a filter's acceptance, and the images drawn for shards still being made.

A shard lands whole, so on a slow generator (a diffusion model on CPU, a selection's candidates) the count
alone would sit at 0% for minutes; between landed shards the bar asks each busy worker, without waiting,
how many images it has drawn for its shard, and shows the sum beside the count.
"""

from __future__ import annotations

from gen_aug.output.records import ShardRecord


class ShardBar:
    def __init__(self, ray, bar):
        self.ray, self.bar = ray, bar
        self.asks: dict = {}  # drawing() ref -> worker, not answered yet
        self.drawn: dict[int, int] = {}  # worker -> images drawn for the shard it is generating, as last answered
        self.acceptance = ""  # a filter's or selection's acceptance so far

    def landed(self, worker: int, record: ShardRecord, records) -> None:
        """`worker`'s shard is written: count its rows; `records` are every shard written so far."""
        if record.candidates is not None:  # a --min-confidence job: how many latents it takes per kept image
            self.acceptance = _acceptance(records)
        self.drawn.pop(worker, None)  # what it drew went into the shard now counted
        self._show(refresh=False)
        self.bar.update(record.rows)

    def ask(self, actors: dict) -> None:
        """Collect the answers that came in and ask `actors` (worker -> actor generating a shard) anew."""
        if self.asks:
            answered, _ = self.ray.wait(list(self.asks), num_returns=len(self.asks), timeout=0)
            for ref in answered:
                worker = self.asks.pop(ref)
                try:
                    self.drawn[worker] = self.ray.get(ref)
                except self.ray.exceptions.RayError:  # a lost worker: its shard's task says so
                    self.drawn.pop(worker, None)
        for worker in set(actors) - set(self.asks.values()):
            self.asks[actors[worker].drawing.remote()] = worker
        self._show(refresh=True)

    def _show(self, refresh: bool) -> None:
        drawn = sum(self.drawn.values())
        drawing = f"{drawn:,} images drawn for the shards in progress" if drawn else ""
        postfix = ", ".join(part for part in (self.acceptance, drawing) if part)
        # A redraw only when it says something new: a log file gets no line a second.
        if postfix != (getattr(self.bar, "postfix", None) or ""):
            self.bar.set_postfix_str(postfix, refresh=refresh)


def _acceptance(records) -> str:
    """'accepted 62.1% of 16.1k candidates' over the shards of a --min-confidence job written so far."""
    tried = sum(sum(r.candidates) for r in records if r.candidates is not None)
    kept = sum(r.rows for r in records if r.candidates is not None)
    return f"accepted {kept / max(tried, 1):.1%} of {tried / 1000:,.1f}k candidates"
