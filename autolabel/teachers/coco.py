"""COCO class names: 80 contiguous (YOLO-family index) and 91 category ids (torchvision index, 'N/A' gaps)."""

COCO80_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip

_COCO91_GAPS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)


def _coco91() -> tuple[str, ...]:
    names = ["__background__"]
    it = iter(COCO80_NAMES)
    for category_id in range(1, 91):
        names.append("N/A" if category_id in _COCO91_GAPS else next(it))
    return tuple(names)


COCO91_NAMES: tuple[str, ...] = _coco91()  # index = COCO category id, as torchvision detection models output
