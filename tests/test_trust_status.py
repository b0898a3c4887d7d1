"""`lookout status` tells the truth about the rules: while the service runs it shows the rules in
force (version, count, when accepted) and, apart, an edit on disk the service refused, with its
errors; not the "0 rules, version -" of the broken files."""

from __future__ import annotations

import asyncio
import json

from service_harness import lookout, wait_until_async, without_workers, write_config

from lookout.config import load_config
from lookout.service import Service, ServiceOptions
from lookout.status import gather_status, render_text

QUICK = ServiceOptions(rules_poll=0.2, sources_poll=0.3, metrics_every=1.0, stagger=0.1)


def test_status_shows_the_rules_in_force_and_the_refused_edit_apart(tmp_path):
    config_path = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": "http://127.0.0.1:9/f",
                                                           "every": "1h"}], token=None, api_url=None)
    config = load_config(str(config_path))
    rules_file = config_path.parent / "rules.yaml"
    service = Service(without_workers(config), QUICK)

    async def scenario():
        task = asyncio.create_task(service.run())
        assert await wait_until_async(lambda: service.scheduler is not None and service.scheduler.running, 60)
        accepted = service.accepted_rules.current
        good = rules_file.read_text(encoding="utf-8")
        rules_file.write_text(good.replace("places:", "placez:", 1), encoding="utf-8")
        assert await wait_until_async(lambda: bool(service.accepted_rules.errors), 15), "the edit was not refused"
        running = await asyncio.to_thread(gather_status, config, service.store)
        # As another process sees it: the CLI, while the service still runs.
        cli = await asyncio.to_thread(lookout, config_path, "status", "--json")
        text = await asyncio.to_thread(lookout, config_path, "status")
        service._on_signal(15)
        assert await asyncio.wait_for(task, 60) == 0
        stopped = await asyncio.to_thread(gather_status, config, service.store)
        return accepted, running, cli, text, stopped

    accepted, running, cli, text, stopped = asyncio.run(scenario())
    n = len(accepted.rules)
    assert n > 0

    r = running.rules
    assert running.service is not None
    assert (r.in_force, r.version, r.rules) == (True, accepted.version, n)
    assert r.accepted_at is not None and r.refused_at is not None and r.accepted_at <= r.refused_at
    assert r.errors and all("rules.yaml:" in e for e in r.errors)  # the refused edit, located
    assert str(config_path.parent / "rules.yaml") in r.files

    shown = render_text(running)
    assert f"in force: {n} rules, version {accepted.version[:12]}" in shown
    assert "refused edit on disk" in shown and "stay in force" in shown
    assert "0 rules, version -" not in shown

    assert cli.returncode == 0, cli.stderr
    doc = json.loads(cli.stdout)["rules"]
    assert doc["in_force"] is True and doc["version"] == accepted.version and doc["rules"] == n
    assert doc["errors"] and doc["accepted_at"] and doc["refused_at"]
    assert f"in force: {n} rules, version {accepted.version[:12]}" in text.stdout
    assert "refused edit on disk" in text.stdout

    # No service: the files on disk, as a service starting now would load them (and refuse).
    s = stopped.rules
    assert stopped.service is None
    assert (s.in_force, s.version, s.rules) == (False, None, 0) and s.errors
