"""Flow tests: YAML cases beside the flows, run in-process with mocked HTTP and a virtual clock.

`model` is the test-file language, `load` reads and checks a test file, `harness` runs one case,
`expect` compares its outcome, `coverage` counts the steps and route branches exercised,
`session` finds and runs many files in parallel; `flowrun test` (engine/cli_test.py) and the
pytest plugin are thin front ends over `session`.
"""

#: file names of flow tests (``flows/<flow>.test.yaml``); the loader skips them as flows
TEST_SUFFIXES = (".test.yaml", ".test.yml")
