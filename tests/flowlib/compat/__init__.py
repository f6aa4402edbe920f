"""Side-by-side compatibility tests: flowlib against PocketFlow 0.0.3."""
