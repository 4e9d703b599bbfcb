"""core.validate: errors name the parameter, the value and what is allowed."""

import pytest
import torch

from dmlcourse.core import validate


def test_messages_name_parameter_value_and_allowed():
    with pytest.raises(ValueError, match=r"mode='x' is not allowed; choose one of \['a', 'b'\]"):
        validate.check_choice("mode", "x", ("a", "b"))
    with pytest.raises(TypeError, match="k must be an integer, got True"):
        validate.check_int("k", True)
    with pytest.raises(ValueError, match="lr must be > 0"):
        validate.check_float("lr", 0.0, min_value=0.0, strict_min=True)
    with pytest.raises(ValueError, match="images has 3 entries but labels has 2"):
        validate.check_images_labels(torch.zeros(3, 28, 28), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="images is empty; nothing here"):
        validate.check_images_labels(torch.zeros(0, 28, 28), torch.zeros(0), why="nothing here")
