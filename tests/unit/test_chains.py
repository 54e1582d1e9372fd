"""Two-passage chains (rag.chains): title mentions, pair scoring and the config's checks."""

from __future__ import annotations

import pytest

from rag.chains import ChainConfig, best_chain, linked, names_title, second_hop_query, titles_named
from rag.config import make_config
from rag.errors import InputError
from rag.types import Passage, ScoredPassage


def hit(pid: str, title: str, text: str, score: float = 0.5, parent: str = "") -> ScoredPassage:
    return ScoredPassage(Passage(pid, text, title=title, parent_id=parent), score)


def test_names_title_whole_words_without_disambiguation() -> None:
    assert names_title("The Prestige (film)", "Nolan directed The Prestige in 2006.")
    assert names_title("Christopher Nolan", "a film by christopher nolan")
    assert not names_title("Nolan", "a Nolanesque plot")
    assert not names_title("", "anything")
    assert not names_title("(film)", "a film")


def test_linked_either_way() -> None:
    a = Passage("a", "Haymo of Faversham was an English Franciscan of the Scholastic era.", title="Haymo of Faversham")
    b = Passage("b", "Scholasticism was the method of the medieval universities.", title="Scholastic era")
    c = Passage("c", "Dover is a port town.", title="Dover")
    assert linked(a, b) and linked(b, a)
    assert not linked(a, c)


def test_best_chain_prefers_a_linked_pair_to_two_close_passages() -> None:
    question = "What language were books translated into during the era of Haymo of Faversham?"
    candidates = [
        hit("haymo", "Haymo of Faversham", "Haymo of Faversham was a Franciscan of the Scholastic era."),
        hit("other", "Faversham Abbey", "Faversham Abbey is a ruined abbey in Kent."),
        hit("era", "Scholastic era", "In the Scholastic era books were translated into Latin."),
    ]
    chain = best_chain(question, candidates, [0.8, 0.6, 0.45], ChainConfig())
    assert [h.passage.id for h in chain] == ["haymo", "era"]  # closer to the question first
    assert chain[0].scores["chain"] == chain[1].scores["chain"] == pytest.approx(0.8 + 0.45 + 0.3 + 0.2)
    # Without the bonuses the two passages closest to the question win.
    plain = best_chain(question, candidates, [0.8, 0.6, 0.45],
                       ChainConfig(link_bonus=0.0, title_bonus=0.0, partner_share=0.0))
    assert [h.passage.id for h in plain] == ["haymo", "other"]


def test_best_chain_title_bonus_finds_both_sides_of_a_comparison() -> None:
    question = "Are Christopher Nolan and Sathish Kalathil both film directors?"
    candidates = [
        hit("nolan", "Christopher Nolan", "Christopher Nolan is an English-American film director."),
        hit("prestige", "The Prestige (film)", "The Prestige is a 2006 thriller directed by Christopher Nolan."),
        hit("kalathil", "Sathish Kalathil", "Sathish Kalathil is an Indian documentary film director."),
    ]
    chain = best_chain(question, candidates, [0.7, 0.65, 0.5], ChainConfig(link_bonus=0.0))
    assert {h.passage.id for h in chain} == {"nolan", "kalathil"}


def test_best_chain_joins_two_documents_not_two_chunks_of_one() -> None:
    candidates = [hit("d1#0", "D1", "first part", parent="d1"), hit("d1#1", "D1", "second part", parent="d1"),
                  hit("d2", "D2", "another document")]
    chain = best_chain("q", candidates, [0.9, 0.85, 0.1], ChainConfig(partner_share=0.0))
    assert [h.passage.id for h in chain] == ["d1#0", "d2"]


def test_an_unlinked_partner_far_from_the_question_is_left_out() -> None:
    """A single-hop question: the nearest passage answers it, a distant unrelated one would only mislead."""
    question = "Where is The Curse of Oak Island filmed?"
    near = hit("oak", "The Curse of Oak Island", "The Curse of Oak Island is filmed on Oak Island in Nova Scotia.")
    far = hit("toronto", "Toronto", "Toronto is the capital of the province of Ontario.")
    named_far = hit("nova", "Nova Scotia", "Nova Scotia is a province of Canada.")
    assert [h.passage.id for h in best_chain(question, [near, far], [0.8, 0.5], ChainConfig())] == ["oak"]
    # As close to the question as the first (share 0.8 of its score): kept.
    assert [h.passage.id for h in best_chain(question, [near, far], [0.8, 0.65], ChainConfig())] == ["oak", "toronto"]
    # Far, but named by the first passage (a link): kept.
    assert [h.passage.id for h in best_chain(question, [near, named_far], [0.8, 0.3], ChainConfig())] == ["oak", "nova"]
    # Share 0: always a pair.
    assert len(best_chain(question, [near, far], [0.8, 0.1], ChainConfig(partner_share=0.0))) == 2
    assert len(best_chain(question, [near, far], [0.8, -0.1], ChainConfig(partner_share=0.0))) == 2


def test_best_chain_with_fewer_than_two_documents_returns_the_candidates() -> None:
    one = [hit("a", "A", "text")]
    assert best_chain("q", one, [0.3], ChainConfig()) == one
    assert best_chain("q", [], [], ChainConfig()) == []
    with pytest.raises(InputError, match="2 scores"):
        best_chain("q", one, [0.3, 0.2], ChainConfig())


def test_second_hop_query_appends_the_seed_text() -> None:
    seed = Passage("a", "x" * 50)
    assert second_hop_query("Who?", seed, 10) == "Who? " + "x" * 10


@pytest.mark.parametrize("bad", [{"pool": 0}, {"seeds": -1}, {"second_hop": 1.5}, {"seed_chars": 0},
                                 {"link_bonus": -0.1}, {"partner_share": 1.5}])
def test_chain_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(InputError, match="chains."):
        ChainConfig(**bad)


def test_chains_are_on_by_default_off_in_vanilla_and_set_from_config() -> None:
    assert make_config().passage_chains is None  # on unless a trained passage reranker or gate is loaded
    assert make_config("vanilla").passage_chains is False
    assert make_config(passage_chains=True, chains=ChainConfig(seeds=2)).chains.seeds == 2
    assert make_config(**{"chains.partner_share": 0.5}).chains.partner_share == 0.5


def test_a_title_inside_a_longer_name_is_no_mention() -> None:
    village = hit("village", "Orrefors", "Orrefors is a glassworks village in Sweden.")
    pavilion = hit("pavilion", "Orrefors Glass Pavilion", "The Orrefors Glass Pavilion was designed by Marta Lindqvist.")
    architect = hit("architect", "Marta Lindqvist", "Marta Lindqvist is an architect born in Kalmar.")
    assert not linked(village.passage, pavilion.passage)
    question = "In which city was the architect of the Orrefors Glass Pavilion born?"
    assert titles_named(question, [village, pavilion, architect]) == [False, True, False]
    chain = best_chain(question, [pavilion, village, architect], [0.7, 0.5, 0.3], ChainConfig())
    assert [h.passage.id for h in chain] == ["pavilion", "architect"]


def test_the_chain_starts_at_the_passage_nearest_the_question() -> None:
    # Two linked near misses would outscore the nearest passage with any partner; the chain keeps the nearest.
    near = hit("near", "Tax rates", "The corporate tax rate in Great Britain is 20%.")
    a = hit("a", "Finance Act", "The Finance Act set rates before the Budget of 2008.")
    b = hit("b", "Budget of 2008", "The Budget of 2008 followed the Finance Act: 28%.")
    chain = best_chain("what is the corporate tax rate in great britain", [a, near, b], [0.6, 0.7, 0.55], ChainConfig())
    assert chain[0].passage.id == "near"
