"""Where the public annotated corpora come from, and how to read them.

Each source is a file in a public GitHub repository at a fixed commit. The corpora are read from
local git copies of those repositories (``RECIPE_CORPORA``, one ``owner+name`` folder each, as the
workplace's fetch tool lays them out); a missing copy stops the recipe with the repository and
commit to fetch. Their text is never committed here: only the trained model is.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    repo: str          # owner/name on GitHub
    commit: str
    path: str
    licence: str
    use: str           # "train" or "test" (a zero-shot test set: never trained on, never chosen by)


WIKINEURAL = ("Babelscape/wikineural", "d2e28c770cba2b285e742529ae18ed849e336c65")
FEWREL = ("thunlp/FewRel", "278a2315d2138810a379cd8d5718914dc56e2582")
CROSSNER = ("zliucr/CrossNER", "2e7ba2a7798c961e3f29fbc51252c5a8d40224bf")
UNIVERSAL_NER = ("universal-ner/universal-ner", "844e0e12262f2606d1d61ed5e9a89ce06ea6b5e3")
MTL_BIO = ("cambridgeltl/MTL-Bioinformatics-2016", "df0df02fae6dbb87d88ffcf323b9096528f06f84")
FEWTK = ("AvishekLahiri/Few_TK", "ff8f95e0aec7f9fa7013c47c1e816306e3a5864c")
SCIERC = ("JerryHao2001/thesis-tanl", "79612fe4a2cfbd5a53b928c5224b7742a7a1515d")
PUBMED = "PubMed abstracts (NLM)"

SOURCES: dict[str, Source] = {
    "conll2003": Source(*WIKINEURAL, "data/conll/en/train.conllu",
                        "CoNLL-2003 (Reuters RCV1 text): research use only", "train"),
    "wikiann": Source(*WIKINEURAL, "data/wikiann/en/train.conllu",
                      "WikiANN (Pan et al. 2017), Wikipedia text: CC BY-SA 3.0", "train"),
    "wikineural_val": Source(*WIKINEURAL, "data/wikineural/en/val.conllu",
                             "WikiNEuRal: CC BY-NC-SA 4.0 (non-commercial)", "train"),
    "wikineural_test": Source(*WIKINEURAL, "data/wikineural/en/test.conllu",
                              "WikiNEuRal: CC BY-NC-SA 4.0 (non-commercial)", "train"),
    "wikigold": Source(*WIKINEURAL, "data/wikigold/en/test.conllu", "WikiGold: CC BY 4.0", "train"),
    # Science and biomedical NER: concept types (genes, chemicals, diseases, methods, tasks, metrics).
    "bionlp13cg": Source(*MTL_BIO, "data/BioNLP13CG-IOB/train.tsv",
                         f"BioNLP 2013 Cancer Genetics; {PUBMED}, annotations CC BY-SA 3.0", "train"),
    "bc5cdr": Source(*MTL_BIO, "data/BC5CDR-IOB/train.tsv",
                     f"BioCreative V CDR; {PUBMED}, annotations public domain (NCBI)", "train"),
    "jnlpba": Source(*MTL_BIO, "data/JNLPBA/devel.tsv",
                     f"JNLPBA / GENIA; {PUBMED}, GENIA annotations CC BY 3.0", "train"),
    "bionlp11id": Source(*MTL_BIO, "data/BioNLP11ID-IOB/train.tsv",
                         f"BioNLP 2011 Infectious Diseases; {PUBMED}, annotations CC BY-SA 3.0", "train"),
    "ncbi_disease": Source(*MTL_BIO, "data/NCBI-disease-IOB/train.tsv",
                           f"NCBI disease corpus; {PUBMED}, annotations public domain (NCBI)", "train"),
    "linnaeus": Source(*MTL_BIO, "data/linnaeus-IOB/train.tsv",
                       "LINNAEUS species corpus (PubMed Central open-access text): CC BY", "train"),
    "fewtk": Source(*FEWTK, "data/supervised/{split}.txt",
                    "Few-TK (NAACL 2024) typed keyphrases of AI papers: research data, no licence stated",
                    "train"),
    "scierc": Source(*SCIERC, "data/scierc/{split}.json",
                     "SciERC (Luan et al. 2018) AI abstracts, entities and relations: research data, "
                     "no licence stated", "train"),
    "fewrel_wiki": Source(*FEWREL, "data/val_wiki.json", "FewRel 1.0: MIT (repository licence)", "train"),
    "fewrel_nyt": Source(*FEWREL, "data/val_nyt.json", "FewRel 2.0 NYT: MIT (repository licence)", "train"),
    "fewrel_semeval": Source(*FEWREL, "data/val_semeval.json",
                             "SemEval-2010 task 8 via FewRel: CC BY 3.0", "train"),
    "fewrel_pubmed": Source(*FEWREL, "data/val_pubmed.json", "FewRel 2.0 PubMed: MIT (repository licence)",
                            "train"),
    "fewrel_names": Source(*FEWREL, "data/pid2name.json", "Wikidata property names: CC0", "train"),
    "webnlg": Source("fuzihaofzh/webnlg-dataset", "1c777e22cc3f3f8c50ecd791c72756a53663cea8", "release_v2/xml/train",
                     "WebNLG v2 (Gardent et al. 2017), DBpedia triples and their verbalisations: CC BY-NC-SA 4.0",
                     "train"),
    "ag_news": Source("Shane-Neeley/CharCnn_Keras", "3e6cdbf2f97e3cbbfa349d1abf8a951e18694372",
                      "data/ag_news_csv/train.csv", "AG News (Zhang et al. 2015): academic, non-commercial",
                      "train"),
    "emotion": Source("niuzaisheng/AttExplainer", "fc8080f783028a0f2f6510175d0cf48a9fb2e3a3",
                      "data/emotion/train.txt", "CARER emotion (Saravia et al. 2018): research use", "train"),
    "trec": Source("tmadhuri/TREC-HindiData", "15f8c5be9fa04434238bd3c08fb08685b210a7b2",
                   "TREC_10.en.label", "TREC question classification (Li & Roth 2002): public research data",
                   "test"),
    # Zero-shot test sets: evaluation only.
    "crossner": Source(*CROSSNER, "ner_data/{domain}/test.txt", "CrossNER: MIT", "test"),
    "mit_restaurant": Source(*UNIVERSAL_NER, "src/eval/test_data/mit-restaurant.json",
                             "MIT Restaurant (Liu et al. 2013): research data", "test"),
}


def corpora_dir() -> Path:
    return Path(os.environ.get("RECIPE_CORPORA", "/work/.mirror"))


def _git_dir(repo: str) -> Path:
    base = corpora_dir() / repo.replace("/", "+")
    for candidate in (base / "repo" / ".git", base / "repo", base):
        if (candidate / "HEAD").is_file():
            return candidate
    raise FileNotFoundError(
        f"no local copy of github.com/{repo} under {corpora_dir()} (set RECIPE_CORPORA to the folder "
        f"holding '{repo.replace('/', '+')}/repo', a git copy of the repository)")


def list_files(source: Source, suffix: str = "") -> list[str]:
    """Paths of the files under the source's path (a folder) at its commit."""
    done = subprocess.run(["git", f"--git-dir={_git_dir(source.repo)}", "ls-tree", "-r", "--name-only",
                           source.commit, source.path.rstrip("/") + "/"], capture_output=True, text=True, check=True)
    return sorted(p for p in done.stdout.splitlines() if p.endswith(suffix))


def read(source: Source, **fmt: str) -> str:
    """The file's text at the source's commit."""
    path = source.path.format(**fmt)
    done = subprocess.run(["git", f"--git-dir={_git_dir(source.repo)}", "show", f"{source.commit}:{path}"],
                          capture_output=True)
    if done.returncode:
        raise FileNotFoundError(f"github.com/{source.repo}@{source.commit}:{path} is not in the local copy "
                                f"({done.stderr.decode().strip()})")
    return done.stdout.decode("utf-8")
