"""Everything one run measured, keyed by figure and language."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.stats import Measurement, Summary, Unavailable
from bench.throughput import Throughput

# Latency figures, in table order: id -> label.
FIGURES: dict[str, str] = {
    "bare": "bare interpreter, subprocess (host binary)",
    "bare_image": "bare interpreter, the image's binary (in 1 container)",
    "engine": "raw engine create+start+wait+remove",
    "cb_cold": "CodeBeaker Execute, pool disabled",
    "cb_warm": "CodeBeaker Execute, warm pool (paced)",
    "cb_warm_b2b": "CodeBeaker Execute, warm pool, back-to-back",
    "stream_first": "ExecuteStream first output (print->client)",
    "cb_host": "CodeBeaker Execute, reusable hosts (paced)",
    "cb_host_b2b": "CodeBeaker Execute, reusable hosts, back-to-back",
    "host_stream_first": "ExecuteStream first output, reusable hosts",
    "host_program": "program wall time in a host's nested sandbox",
    "epicbox": "epicbox 1.1.0, run per program",
    "llm_sandbox": "llm-sandbox 0.3.46, session per program",
    "llm_sandbox_pooled": "llm-sandbox 0.3.46 pooled (REUSES containers)",
}
# Peers CodeBeaker must beat by the target factor: single-use containers, like ours.
COMPARABLE_PEERS = ("epicbox", "llm_sandbox")
INFO_PEERS = ("llm_sandbox_pooled",)
THROUGHPUT: dict[str, str] = {
    "cb": "CodeBeaker Execute, warm pool",
    "cb_host": "CodeBeaker Execute, reusable hosts",
    "engine": "raw engine churn (create+start+wait+remove)",
}


@dataclass
class Results:
    languages: list[str]
    latency: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    throughput: dict[str, dict[str, Throughput | Unavailable]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pool_flag: bool = True

    def put(self, figure: str, language: str, value: Measurement) -> None:
        self.latency.setdefault(figure, {})[language] = value

    def put_rate(self, key: str, language: str, value: Throughput | Unavailable) -> None:
        self.throughput.setdefault(key, {})[language] = value

    def summary(self, figure: str, language: str) -> Summary | None:
        found = self.latency.get(figure, {}).get(language)
        return found if isinstance(found, Summary) and found.ok else None

    def rate(self, key: str, language: str) -> Throughput | None:
        found = self.throughput.get(key, {}).get(language)
        return found if isinstance(found, Throughput) else None

    def label(self, figure: str) -> str:
        label = FIGURES[figure]
        if not self.pool_flag and figure in ("cb_warm", "cb_warm_b2b", "stream_first"):
            label += " [NO POOL FLAG: cold server]"
        return label

    def to_json(self) -> dict[str, object]:
        return {
            "latency": {
                figure: {
                    "label": self.label(figure),
                    **{lang: m.to_json() for lang, m in by_lang.items()},
                }
                for figure, by_lang in self.latency.items()
            },
            "throughput": {
                key: {
                    "label": THROUGHPUT[key],
                    **{lang: t.to_json() for lang, t in by_lang.items()},
                }
                for key, by_lang in self.throughput.items()
            },
            "notes": self.notes,
            "server_has_pool_flag": self.pool_flag,
        }
