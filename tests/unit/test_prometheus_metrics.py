"""The series the shipped alerts and dashboard read, as the Prometheus adapter exports them."""

from __future__ import annotations

from adapters.prometheus_metrics import PrometheusMetrics
from application.health import HealthState


def test_connector_ready_follows_readiness_at_scrape_time() -> None:
    health = HealthState()
    metrics = PrometheusMetrics(health=health)
    assert metrics.registry.get_sample_value("connector_ready") == 0.0  # stream not open yet
    health.set_stream_open(True)
    assert metrics.registry.get_sample_value("connector_ready") == 1.0
    health.fail("checkpoint", "Firestore unreachable")
    assert metrics.registry.get_sample_value("connector_ready") == 0.0


def test_lease_per_unit_keeps_the_generation_of_the_last_one_held() -> None:
    metrics = PrometheusMetrics()
    metrics.lease_owned(unit="warehouse", owned=False)
    metrics.lease_owned(unit="warehouse.inventory.p0of2", owned=True, generation=7)
    sample = metrics.registry.get_sample_value
    assert sample("connector_lease_owned", {"unit": "warehouse"}) == 0.0
    assert sample("connector_lease_owned", {"unit": "warehouse.inventory.p0of2"}) == 1.0
    assert sample("connector_lease_generation", {"unit": "warehouse.inventory.p0of2"}) == 7.0
    metrics.lease_owned(unit="warehouse.inventory.p0of2", owned=False)
    assert sample("connector_lease_owned", {"unit": "warehouse.inventory.p0of2"}) == 0.0
    assert sample("connector_lease_generation", {"unit": "warehouse.inventory.p0of2"}) == 7.0


def test_dead_letters_count_by_collection_and_reason_and_the_process_reports_its_memory() -> None:
    metrics = PrometheusMetrics()
    metrics.dead_lettered(collection="inventory", reason="validation_failed")
    metrics.dead_lettered(collection="inventory", reason="validation_failed")
    sample = metrics.registry.get_sample_value
    assert (
        sample("connector_dead_letters_published_total", {"collection": "inventory", "reason": "validation_failed"})
        == 2
    )
    assert (sample("process_resident_memory_bytes") or 0) > 0
