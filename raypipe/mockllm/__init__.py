"""raypipe's own OpenAI-compatible server on 127.0.0.1, with injected faults (rate limits, 5xx,
timeouts, outages, dropped connections) and scripted answers. `raypipe bench synth` measures the
engine against it; the tests use it in place of a real LLM API."""
