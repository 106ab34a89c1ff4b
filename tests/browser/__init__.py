"""The web catalogue, through its API and in headless Chromium."""
