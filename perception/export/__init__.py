"""Drive clips and their labels out to the viewers robotics people use: Rerun (``.rrd``) and Foxglove (``.mcap``).

``perception export rerun|foxglove CLIP --out FILE`` (``cli.py``); ``scene.py`` holds what both share (timed camera
views, label sets from ground truth, pseudo-labels and ``deploy run`` detections). The viewer SDKs are optional
dependencies (``pip install fleetvision[robot]``) imported only by these modules.
"""
