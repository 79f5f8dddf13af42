"""The flows written out in docs/edi-and-partners.md validate beside the shipped flows (which
they hand over to), so the examples an analyst copies are ones flowrunner accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "edi-and-partners.md"


def example_flows() -> dict[str, str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    flows = {re.match(r"flow: (\S+)", b).group(1): b for b in blocks if b.startswith("flow:")}
    assert set(flows) == {"customer-860-po-change", "b2b-portal-order-intake"}
    return flows


def test_the_example_flows_of_the_edi_guide_validate(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", folder)
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copytree(ROOT / "connections", tmp_path / "connections")
    for name, text in example_flows().items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "validate", "flows"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 error(s)" in done.stdout


def test_the_channel_example_is_under_40_lines_like_the_shipped_one() -> None:
    assert len(example_flows()["b2b-portal-order-intake"].splitlines()) <= 40
    shipped = (ROOT / "flows" / "woocommerce-order-intake.yaml").read_text(encoding="utf-8")
    assert len(shipped.splitlines()) <= 40


CHANGE_TEST = """flow: customer-860-po-change
env: {ERP_US_URL: "http://erp-us.test"}
cases:
  - name: the retailer's 860 is booked as a canonical order change
    input: {file: samples/860_change.edi}
    mocks:
      - request: {method: POST, url: "http://erp-us.test/*"}
        responses: [{status: 201}]
    expect:
      status: split
      calls:
        - step: book
          count: 1
          url: "http://erp-us.test/sales-orders/by-po/4500098812/changes"
          body:
            po_number: "4500098812"
            change_type: change
            change_sequence: "1"
            order_date: "2026-11-20"
            requested_at: "2026-11-24"
            buyer: {id: BIGMART, name: BIGMART STORES INC}
            lines:
              - {line_number: "1", action: change, sku: PAPER-A4-80G-5,
                 quantity: {value: "60", uom: CA}, unit_price: "23.90",
                 requested_delivery_date: "2026-12-02"}
              - {line_number: "2", action: delete, sku: TONER-HP-59A, unit_price: "60.80"}
              - {line_number: "3", action: add, sku: MUG-WHT,
                 quantity: {value: "24", uom: EA}, unit_price: "3.10"}
"""


def test_the_860_example_books_a_retailers_change_as_a_canonical_order_change(
        tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    (folder / "samples").mkdir(parents=True)
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copy(ROOT / "tests" / "connectors" / "x12" / "samples" / "860_change.edi",
                folder / "samples")
    (folder / "customer-860-po-change.yaml").write_text(example_flows()["customer-860-po-change"],
                                                         encoding="utf-8")
    (folder / "customer-860-po-change.test.yaml").write_text(CHANGE_TEST, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "test", "flows"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
