"""Tests of fastadv.ops, one file per public op (test_<op>.py: every backend against the
reference, the backend-specific kernel tests, the argument errors), plus the dispatcher
(test_dispatch.py), the compiled C++ backend (test_backend_cpp.py) and the metadata-only
contract of every op (test_value_reads.py). Shared cases and helpers: helpers.py."""
