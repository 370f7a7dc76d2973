"""transformers' own integration test for the published flaubert_base_cased, run on the real weights.

It runs wherever flaubert/flaubert_base_cased is in the huggingface_hub cache (``minflaubert download
flaubert_base_cased``; see weights/README.md) and skips elsewhere: no machine of this project reaches the model hub,
so CI skips it too.
The ids end with 2, the pad index: the model masks that position, and the expected numbers include that.
"""
import numpy as np
import pytest

from minflaubert.checkpoints.hub import resolve_name
from minflaubert.models.model import FlaubertModel
from minflaubert.nn.paths import PATHS


def downloaded_folder():
    """The checkpoint's folder if it is already on this machine (looked up without any network request)."""
    try:
        return resolve_name("flaubert_base_cased", local_files_only=True)
    except OSError:
        return None


FOLDER = downloaded_folder()
IDS = [[0, 345, 232, 328, 740, 140, 1695, 69, 6078, 1588, 2]]
EXPECTED = [[-2.6251, -1.4298, -0.0227], [-2.8510, -1.6387, 0.2258], [-2.8114, -1.1832, -0.3066]]


@pytest.mark.skipif(FOLDER is None, reason="flaubert/flaubert_base_cased is not downloaded: "
                                           "run `minflaubert download flaubert_base_cased`")
@pytest.mark.parametrize("path", PATHS)
def test_flaubert_base_cased_integration(path):
    model = FlaubertModel.from_pretrained(FOLDER, path=path)
    output = model(IDS)
    assert output.execution_path == path
    hidden = output.last_hidden_state
    assert hidden.shape == (1, 11, 768)
    np.testing.assert_allclose(hidden[0, :3, :3], EXPECTED, atol=1e-4)
