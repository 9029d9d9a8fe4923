"""Read /metrics as Prometheus does: prometheus_client's own parser over the scraped text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def scrape(client, **extra) -> dict[tuple[str, frozenset], float]:
    """{(sample name, frozenset of label pairs): value} from GET /metrics."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)
