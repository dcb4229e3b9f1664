// Test helper for tests/kind/smoke.py (stdlib only).
module vitpipeline.test/kind/probe

go 1.26.0
