"""The parts of bench/nodered.py: flowrunner and Node-RED measured side by side, in one run.

``procs`` starts and stops every server in a process group of its own and reads their CPU from
/proc; ``servers`` starts Node-RED (installing it from npm on first use), flowrunner through its
command line, and private redis-servers; ``stub`` is the loopback ERP that counts effects;
``load`` drives wrk with ``shopify.lua`` and signs the order body.
"""
