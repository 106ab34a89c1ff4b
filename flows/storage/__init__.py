"""Object stores (local folder, S3) and the output store's layout."""
