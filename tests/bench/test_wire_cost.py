from __future__ import annotations

from neptune_bench import wire_cost


def test_the_wire_cost_probe_measures_every_step_cold_and_warm() -> None:
    result = wire_cost.measure(samples=5)
    for temperature in ("cold", "warm"):
        for step in ("aes_gcm_open_us", "decode_us", "check_us"):
            figures = result[temperature][step]
            assert 0 < figures["p50"] <= figures["p90"] <= figures["p99"], (temperature, step)
    table = wire_cost.markdown(result)
    assert table.count("\n") == 4 and "| aes_gcm_open |" in table
