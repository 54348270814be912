"""Local fakes of provider APIs for tests; the real SDKs talk to them over HTTP."""
