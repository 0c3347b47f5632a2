import json
from github_fake import fake_github, event_env, DATA  # noqa: F401
from molt_budget.report.github import publish

def test_smoke(fake_github, tmp_path):
    report = json.loads((DATA / "report_fail.json").read_text())
    env = event_env(fake_github, tmp_path, "pull_request")
    sleeps = []
    out = publish(report, env=env, sleep=sleeps.append)
    print(out)
    out2 = publish(report, env=env, sleep=sleeps.append)
    print(out2)
    print([ (s.method, s.path, s.query) for s in fake_github.seen])
    print(fake_github.violations)
    assert 0
