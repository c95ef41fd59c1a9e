"""Inference on new images: a student from its safetensors or ONNX file, sliced inference, output.

Torch-free (numpy, PIL, onnxruntime; the API process imports only these): `errors`,
`metadata` (what a model file says about itself), `boxes` (NMS, NMM, IoU / IoS), `anchors`,
`postprocess` (dense head outputs -> boxes, as torchvision's RetinaNet / FCOS do it),
`images` (letterbox), `detections`, `predictor` (the common predict step), `onnx_model`,
`slicing` (SAHI-style tiles and merging; tiled training and sliced evaluation share it),
`results` (COCO records), `drawing`, `batch` (images in, detections JSON and pictures out).
With torch: `torch_model` (a student rebuilt from its safetensors), `loading` (any model
file). Import from the module that holds a name.
"""
