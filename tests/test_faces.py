import numpy as np

from dfp import faces
from dfp.media import decode_image


def test_resize_leaves_model_sized_input_untouched_but_scaled():
    rgb = np.random.RandomState(0).randint(0, 255, (256, 256, 3), np.uint8)
    np.testing.assert_array_equal(faces.resize_to_model_input(rgb), rgb.astype(np.float32) / 255.0)
    assert faces.resize_to_model_input(rgb[:100]).shape == (256, 256, 3)


def test_crop_is_square_grown_by_the_margin_and_inside_the_image():
    rgb = np.zeros((200, 300, 3), np.uint8)
    crop = faces.crop_face(rgb, (10, 10, 50, 70), margin=0.25)
    assert crop.shape == (90, 90, 3)
    assert faces.crop_face(rgb, (250, 150, 299, 199), margin=1.0).shape[:2] == (147, 147)


def test_mtcnn_finds_the_face_in_a_portrait(shared):
    rgb = decode_image(shared / "video" / "source" / "s0.jpg", 10**8)
    found = faces.FaceDetector().detect(rgb)
    assert found and found[0].confidence > 0.95
    x_min, y_min, x_max, y_max = found[0].box
    assert 0 <= x_min < x_max <= rgb.shape[1] and 0 <= y_min < y_max <= rgb.shape[0]


def test_tracker_keeps_one_id_per_moving_face_and_gives_a_new_face_a_new_id():
    tracker = faces.FaceTracker()

    def a(x):
        return faces.Face((x, 10, x + 50, 60), 0.99)

    assert tracker.update([a(0)]) == [1]
    assert tracker.update([a(5)]) == [1]
    assert tracker.update([a(10), a(200)]) == [1, 2]
    assert tracker.update([]) == []
    assert tracker.update([a(200)]) == [2]
