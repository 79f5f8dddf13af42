"""`flowrun test` runs a flow with an as2 step against the case's mocks: no keys, no partner,
the payload and AS2 headers checked like any call, a 503 retried, an unmocked step reported."""

from __future__ import annotations

from pathlib import Path

from as2_support import setup
from click.testing import CliRunner

from engine.cli import main

FLOW = """flow: ack-out
trigger: {manual: {}}
defaults:
  retry: {max_attempts: 3, backoff: {initial: 1s, jitter: none}}
steps:
  - id: send_997
    as2: {connection: acme_as2, filename: "997-{{ $substring($, 4, 2) }}.edi"}
    output: vars.as2
"""

TESTS = """flow: ack-out
cases:
  - name: the 997 goes to the partner after a 503
    input: {body: "ISA*00*example~"}
    mocks:
      - step: send_997
        responses: [{status: 503}, {status: 200, body: "MDN follows"}]
    expect:
      status: succeeded
      assert: '$vars.as2.mdn = "mocked"'
      calls:
        - step: send_997
          count: 2
          url: "as2://acme_as2"
          headers: {AS2-From: FLOWRUNNER, AS2-To: ACME RETAIL,
                    Content-Type: application/edi-x12,
                    Content-Disposition: 'attachment; filename="997-00.edi"'}
  - name: a partner that refuses it dead-letters the run
    input: {body: "ISA*00*example~"}
    mocks:
      - step: send_997
        responses: [{status: 403}]
    expect:
      dead_letter:
        {step: send_997, kind: http, reason_contains: "as2 POST as2://acme_as2 answered 403"}
"""


def test_flowrun_test_sends_as2_to_the_mocks_without_keys(tmp_path: Path) -> None:
    setup(tmp_path)  # the connection and certificates; its key secret is not set anywhere
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "ack-out.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "flows" / "ack-out.test.yaml").write_text(TESTS, encoding="utf-8")
    result = CliRunner().invoke(main, ["test", str(tmp_path / "flows")])
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output
