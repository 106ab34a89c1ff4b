"""Reading, inspecting and encoding images: masters in, preservation and access copies out."""
