"""Pictures that explain a detector: Grad-CAM maps of its top detections per pyramid level."""
