"""Enhancement of whole media files: images, `.npy` arrays and videos."""
