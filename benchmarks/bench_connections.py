"""Figure 4 of ``benchmarks/bench.py``: what idle miners cost.

The coordinator's resident memory per connected idle miner, and its CPU while
they only heartbeat, with thousands of miners connected (``--miners``).
"""

from __future__ import annotations

import asyncio

from bench_harness import LoadGroup, Run, bench_server, health, log, wait_health


async def connections(run: Run) -> None:
    """RSS and CPU with no miner, then with each count of ``plan.miners`` connected."""
    plan = run.plan
    out = run.result["connections"]
    server = bench_server(run.tmp, "connections")
    groups: list[LoadGroup] = []
    miners, rss, cpu = [0], [], []
    try:
        await server.start()
        await asyncio.sleep(1.0)
        rss.append(server.rss())
        cpu.append(round(await server.cpu_percent(plan.cpu_window), 2))
        current = 0
        async with server.client() as client:
            for n in plan.miners:
                group = run.load(server.url, "idle", f"idle{n}-", connections=n - current, slots=1)
                groups.append(await group.start())
                try:
                    await wait_health(
                        client,
                        f"{n} miners",
                        lambda h, n=n: h["minersConnected"] >= n,
                        timeout=30 + n / 50,
                        every=0.5,
                    )
                except RuntimeError as exc:
                    closes = [r.get("closes") for g in groups for r in g.latest]
                    raise RuntimeError(f"{exc}; closes seen by the miners: {closes}") from None
                current = n
                await asyncio.sleep(run.args.settle)  # connect-time writes settle
                miners.append(n)
                rss.append(server.rss())
                beats = sum(g.total("heartbeats") for g in groups)
                cpu.append(round(await server.cpu_percent(plan.cpu_window), 2))
                beats = sum(g.total("heartbeats") for g in groups) - beats
                state = await health(client)
                log(
                    f"{state['minersConnected']} idle miners: RSS {rss[-1] / 2**20:.1f} MiB,"
                    f" CPU {cpu[-1]}%, ~{beats / plan.cpu_window:.0f} heartbeats/s"
                )
    finally:
        await asyncio.gather(*(g.stop() for g in groups))
        await server.stop()
    out["miners"] = miners
    out["rss_bytes"] = rss
    per = [round((r - rss[0]) / n) for n, r in zip(miners[1:], rss[1:], strict=True)]
    out["bytes_per_miner_each"] = per
    out["bytes_per_miner"] = per[-1] if per else None
    out["idle_cpu_percent_each"] = cpu
    out["idle_cpu_percent"] = cpu[-1]
