"""Choosing the beam-search length penalty on validation sentences."""

from loopformer.tasks.translation import TranslationConfig, choose_length_penalty


class _Task:
    """Outputs whose length grows with the penalty: the reference is matched at 1.0 only."""

    cfg = TranslationConfig(test_beam=3)
    val_data = {"src": ["a", "b"], "ref": ["the cat sat on the mat", "a dog ran in the park"]}

    def translate(self, model, sentences, length_penalty=None):
        words = {0.5: 3, 1.0: 6, 2.0: 6}[length_penalty]
        return [" ".join(ref.split()[:words]) for ref in self.val_data["ref"]]


def test_the_best_validation_bleu_wins_and_ties_go_to_the_earlier_value():
    choice = choose_length_penalty(_Task(), None, [0.5, 1.0, 2.0])
    assert choice["length_penalty"] == 1.0  # 2.0 scores the same: the earlier value is kept
    assert abs(choice["val_bleu"]["1.0"] - 100.0) < 1e-9 and choice["val_bleu"]["0.5"] < 99.0
    assert choice["beam"] == 3 and choice["sentences"] == 2
