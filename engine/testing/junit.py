"""JUnit XML for CI: one testsuite per test file, one testcase per case, problems as errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from engine.testing.session import SessionResult


def junit_xml(session: SessionResult) -> str:
    root = ET.Element("testsuites", name="flowrun test")
    by_file = defaultdict(list)
    for result in session.results:
        by_file[result.file].append(result)
    problems = defaultdict(list)
    for problem in session.errors:
        problems[problem.file].append(problem)
    files = list(dict.fromkeys([d.file for d in session.files] + list(problems)))
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for file in files:
        results = by_file.get(file, [])
        errors = problems.get(file, [])
        doc = next((d for d in session.files if d.file == file), None)
        name = doc.model.flow if doc is not None and doc.model is not None else file
        suite = ET.SubElement(root, "testsuite", name=name, file=file,
                              tests=str(len(results) + (1 if errors else 0)),
                              failures=str(sum(not r.passed for r in results)),
                              errors=str(1 if errors else 0),
                              time=f"{sum(r.seconds for r in results):.3f}")
        if errors:
            case = ET.SubElement(suite, "testcase", classname=name, name="load", file=file)
            error = ET.SubElement(case, "error", message=f"{len(errors)} problem(s) in the test "
                                                         "file")
            error.text = "\n".join(str(p) for p in errors)
        for result in results:
            case = ET.SubElement(suite, "testcase", classname=result.flow, name=result.name,
                                 file=result.file, line=str(result.line),
                                 time=f"{result.seconds:.3f}")
            if not result.passed:
                failure = ET.SubElement(case, "failure",
                                        message=result.failures[0].render().splitlines()[0])
                failure.text = result.report()
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
