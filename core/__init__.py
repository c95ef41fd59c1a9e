"""The engine: PyTorch, torchvision, pycocotools; nothing of the platform."""
