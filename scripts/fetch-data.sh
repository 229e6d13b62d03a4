#!/usr/bin/env bash
# fetch-data.sh - puts the demo corpora into data/NAME/ and checks the SHA-256 of every file.
# Run `scripts/fetch-data.sh --help` for the details. The files, their sources and checksums are
# those of ../shared/data/README.md; keep the MANIFEST below in step with it.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/fetch-data.sh NAME...      NAME: multi30k, tatoeba-eng-fra, chatterbot, dailydialog, all
       scripts/fetch-data.sh --help

Puts each corpus into data/NAME/ (data/ is git-ignored), file by file, from the first source that
has it:
  1. $S2S_DATA_MIRROR/NAME/...            when S2S_DATA_MIRROR is set
  2. ../shared/data/NAME/...              the shared folder beside the checkout
  3. the original upstream repository     raw.githubusercontent.com at a pinned commit: the
                                          Multi30k .gz files are decompressed, Tatoeba and
                                          DailyDialog members are taken out of their zip files
Every file is checked against the SHA-256 listed in this script (from ../shared/data/README.md).
A file that does not match is deleted and reported, and the script exits with status 1.
Files already in data/ with the right checksum are left alone, so running it again is cheap.

Environment:
  S2S_DATA_MIRROR    a folder laid out like ../shared/data, tried first
  S2S_DATA_DIR       where to put the corpora (default: data/ in the repository)
  S2S_DATA_UPSTREAM  base URL instead of https://raw.githubusercontent.com (a proxy or a copy)

Licences differ (see ../shared/data/README.md): multi30k and dailydialog are non-commercial
only; tatoeba-eng-fra is CC BY 2.0 FR; chatterbot is BSD 3-Clause.
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${S2S_DATA_DIR:-$root/data}
upstream=${S2S_DATA_UPSTREAM:-https://raw.githubusercontent.com}
mirrors=()
[ -n "${S2S_DATA_MIRROR:-}" ] && mirrors+=("$S2S_DATA_MIRROR")
mirrors+=("$(cd "$root/../shared/data" 2>/dev/null && pwd || echo "$root/../shared/data")")

M30K=multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw
TATO="GauravBh1010tt/DL-Seq2Seq/c629028747062e5bef1550a627c4478f183e3ea8/neural%20machine%20translation/data.zip"
TATO_SHA=fb317e80248faeb62dc25ef3390ae24ca34b94e276bbc5141fd8862c2200bff5
CHAT=gunthercox/chatterbot-corpus/a01efece26661309b870af0251d96f94ee09fb19
DD=Ls-Dai/Deep-Reinforcement-Learning-for-Dialogue-Generation-in-PyTorch/bae51b16e3e8c0ce4ffd70b75ecfc40fbeb8e7ee/data
DD_TRAIN=6191257f8250da0e045bfd1d017645e15b2358df975ec4c5c431a5a1f99662a4
DD_VAL=f068cf7526a56ab5f26e99b74ce9edbc2766f7b060a3c6cef035920b0dd28153
DD_TEST=5f9526a5ce4b8af4ca237aa3ff38cbf03becbc596c70b0974d7f5f9af2ea0615

# corpus | file in data/corpus/ | SHA-256 | how upstream has it | upstream path | zip member | archive SHA-256
#   gz: a gzip file to decompress; zip: a member of a zip file; raw: the file itself
MANIFEST="
multi30k|train.en|460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6|gz|$M30K/train.en.gz||d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f
multi30k|train.de|2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72|gz|$M30K/train.de.gz||726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6
multi30k|val.en|1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227|gz|$M30K/val.en.gz||14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28
multi30k|val.de|660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660|gz|$M30K/val.de.gz||f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a
multi30k|test.en|399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182|gz|$M30K/test_2016_flickr.en.gz||611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9
multi30k|test.de|4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16|gz|$M30K/test_2016_flickr.de.gz||9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8
tatoeba-eng-fra|eng-fra.tsv|6b0f3decdb78600485b58efb541f5a2ab69ba888742ac04180e013084e40de7c|zip|$TATO|data/eng-fra.txt|$TATO_SHA
chatterbot|LICENSE.md|a3ef744f9a7ddfb090596aeabe99c145adfe0d14f3eafdfb6a70207caded8aea|raw|$CHAT/license.md||
chatterbot|english/ai.yml|620a65787a56641db4a03e1419a7578e813967218cf6721e3ea4ef90844916aa|raw|$CHAT/chatterbot_corpus/data/english/ai.yml||
chatterbot|english/botprofile.yml|1a694c5288f3f8f87d027d2f98dae71d02efa88e28853a6e5d27e6dbce907294|raw|$CHAT/chatterbot_corpus/data/english/botprofile.yml||
chatterbot|english/coding.yml|0de8d7d7e6095164c59d7b0ef97c402c770c2d7982f485ab372dc6736c1a4e79|raw|$CHAT/chatterbot_corpus/data/english/coding.yml||
chatterbot|english/computers.yml|a222c5a432efe4289e6c5edf1c3d99fd26c48df99db0ff893d1d5ab569f5b750|raw|$CHAT/chatterbot_corpus/data/english/computers.yml||
chatterbot|english/conversations.yml|1cf105b5802f377b2dc145f741f7df85629c9ca27e450538165286a75b5e3416|raw|$CHAT/chatterbot_corpus/data/english/conversations.yml||
chatterbot|english/emotion.yml|510a018938c1880dd0f67e1ae458e26878c91a570daef5a84fb83713c89f0989|raw|$CHAT/chatterbot_corpus/data/english/emotion.yml||
chatterbot|english/food.yml|68eab2497721d03044d520b70c27d8a0d8ba8e505b3265fb3a1ff3e1a64c7124|raw|$CHAT/chatterbot_corpus/data/english/food.yml||
chatterbot|english/gossip.yml|d6f1b1613ed70821fc1c427bdd00395f58b77ff57d76fbe4ab8cb2038cf15c9b|raw|$CHAT/chatterbot_corpus/data/english/gossip.yml||
chatterbot|english/greetings.yml|0dd7eb8dcee8e2a38cd1a137bcfbd7f3eb732cddfa1bd396fac5a24b063a4d55|raw|$CHAT/chatterbot_corpus/data/english/greetings.yml||
chatterbot|english/health.yml|eb88edc5302d688ca096374c7e3f5b9d7cd821f053a17d80204c4acdc20ea4f5|raw|$CHAT/chatterbot_corpus/data/english/health.yml||
chatterbot|english/history.yml|0ff4beeb6ef9b641dc12e1039a149c6a03eb8f2e183702fad2b0997fcc1d63e3|raw|$CHAT/chatterbot_corpus/data/english/history.yml||
chatterbot|english/humor.yml|d2aa03a63f0e8e054589f642788afbc41b8c76f5d734c50901a9a63b359ea06b|raw|$CHAT/chatterbot_corpus/data/english/humor.yml||
chatterbot|english/literature.yml|9361ff1478273d811259ca307a1e6be23a5e08e776a5bc5d9524fb13deb886f1|raw|$CHAT/chatterbot_corpus/data/english/literature.yml||
chatterbot|english/money.yml|2911d9766625ff5c2feb3d784f2951b2ebd5e9658547efce7568d0282c49274b|raw|$CHAT/chatterbot_corpus/data/english/money.yml||
chatterbot|english/movies.yml|075ca9d91a527206c635c88bf0353323826a25a6f2057be1bc71888af389f842|raw|$CHAT/chatterbot_corpus/data/english/movies.yml||
chatterbot|english/politics.yml|c436d5efedea6f715a8a811423a8edf396097771eb11e43b1f0a43a6aee7c2f0|raw|$CHAT/chatterbot_corpus/data/english/politics.yml||
chatterbot|english/psychology.yml|5047c211d35f715af4fbc3398f111135e99d34afcd0905a661c40bdeb1413a58|raw|$CHAT/chatterbot_corpus/data/english/psychology.yml||
chatterbot|english/science.yml|3c259799bba36c67a1601fc264ec01ab051e9e63950734ce1ef644e022081fe7|raw|$CHAT/chatterbot_corpus/data/english/science.yml||
chatterbot|english/sports.yml|8d1bcc632cad4058e3b8490daa15dcd7c2a51790a7b9140b252600b794590403|raw|$CHAT/chatterbot_corpus/data/english/sports.yml||
chatterbot|english/tech_support.yml|8a87cdf32579c8efdd9c5f3ef166ae9fb76dcf271b958f5e2265b9246b430655|raw|$CHAT/chatterbot_corpus/data/english/tech_support.yml||
chatterbot|english/trivia.yml|3a9de77e6d82803d1ea3eba48cf6543c884908f4c4f50501fed69f88112994dc|raw|$CHAT/chatterbot_corpus/data/english/trivia.yml||
dailydialog|readme.txt|e539c4d2b5a5740651444bfed5218247795d43bb3397f85e4fffa0d7fda1d3f0|raw|$DD/readme.txt||
dailydialog|train/dialogues_train.txt|71633bd5fdb0b09dd82215b131b56432cf7329a0fe50bc8adec168713d350d1a|zip|$DD/train.zip|train/dialogues_train.txt|$DD_TRAIN
dailydialog|train/dialogues_act_train.txt|e910d5cfedc500d03dbedd3bcf8661ae8cf0e44d029e56a291f49a7b67042adf|zip|$DD/train.zip|train/dialogues_act_train.txt|$DD_TRAIN
dailydialog|train/dialogues_emotion_train.txt|5c94e57c6e6c6641f4b1386513085f9d9b934229e732a556424ca7dfae4b6c77|zip|$DD/train.zip|train/dialogues_emotion_train.txt|$DD_TRAIN
dailydialog|validation/dialogues_validation.txt|2ad64701fe3a4449e7a6ee7cdc6c2a71c80f77b8a34f708ac0532395f499081c|zip|$DD/validation.zip|validation/dialogues_validation.txt|$DD_VAL
dailydialog|validation/dialogues_act_validation.txt|fbeee7a1b2927c9cb33d6fdc384bb3ea55abf040928d2de4dcea57ab4a669682|zip|$DD/validation.zip|validation/dialogues_act_validation.txt|$DD_VAL
dailydialog|validation/dialogues_emotion_validation.txt|3d4094299a995e998bbc3492ce1755c9abc1e7f56500c840e83b12dd16580596|zip|$DD/validation.zip|validation/dialogues_emotion_validation.txt|$DD_VAL
dailydialog|test/dialogues_test.txt|3c323651cdfb09f7b529f850eddf96a638fc6cc9b43330b77956ab248484a1a8|zip|$DD/test.zip|test/dialogues_test.txt|$DD_TEST
dailydialog|test/dialogues_act_test.txt|566649e92babfa528a77757b161deeee91e9c91fe0db71760063747e132d3f4c|zip|$DD/test.zip|test/dialogues_act_test.txt|$DD_TEST
dailydialog|test/dialogues_emotion_test.txt|482b7235f91a1441055a09241b2d2709bb1702f4a08d7316c27fa807cba7d3c9|zip|$DD/test.zip|test/dialogues_emotion_test.txt|$DD_TEST
"
ALL="multi30k tatoeba-eng-fra chatterbot dailydialog"

say() { echo "fetch-data: $*"; }
fail() { echo "fetch-data: ERROR: $*" >&2; }

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
  else python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

download() { # url file
  if command -v curl >/dev/null; then curl -fsSL --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null; then wget -q -O "$2" "$1"
  else fail "neither curl nor wget is installed; install one, or set S2S_DATA_MIRROR"; return 1
  fi
}

unzip_member() { # zip member out
  if command -v unzip >/dev/null; then unzip -p "$1" "$2" >"$3"
  else python3 -c 'import sys,zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
         "$1" "$2" >"$3"
  fi
}

# An upstream archive, downloaded once per run into $work and checked against its SHA-256.
archive() { # path sha -> prints the local file
  local local_file
  local_file="$work/$(echo "$1" | tr '/%' '__')"
  [ -f "$local_file.bad" ] && { fail "skipped: $upstream/$1 did not match its SHA-256 (above)"; return 1; }
  if [ ! -f "$local_file" ]; then
    say "downloading $upstream/$1" >&2
    download "$upstream/$1" "$local_file.part" || { fail "download of $upstream/$1 failed"; return 1; }
    local got; got=$(sha256_of "$local_file.part")
    if [ "$got" != "$2" ]; then
      rm -f "$local_file.part"
      touch "$local_file.bad"
      fail "SHA-256 mismatch for $upstream/$1: expected $2, got $got; deleted it"
      return 1
    fi
    mv "$local_file.part" "$local_file"
  fi
  echo "$local_file"
}

# Writes one file from upstream into $2: raw, decompressed or taken out of a zip.
from_upstream() { # how out path member archive_sha
  local arc
  case "$1" in
    raw) say "downloading $upstream/$3" >&2; download "$upstream/$3" "$2" || { fail "download of $upstream/$3 failed"; return 1; } ;;
    gz) arc=$(archive "$3" "$5") && gzip -dc "$arc" >"$2" ;;
    zip) arc=$(archive "$3" "$5") && unzip_member "$arc" "$4" "$2" ;;
  esac
}

# One manifest line: keep the file if it is already right, else copy or download it and check it.
fetch_file() { # corpus file sha how path member archive_sha
  local out="$dest/$1/$2" part="$dest/$1/$2.part" m src=""
  if [ -f "$out" ]; then
    local have; have=$(sha256_of "$out")
    if [ "$have" = "$3" ]; then kept=$((kept + 1)); return 0; fi
    say "$1/$2: present but its SHA-256 is $have, not $3; fetching it again"
  fi
  mkdir -p "$(dirname "$out")"
  rm -f "$part"
  for m in "${mirrors[@]}"; do
    if [ -f "$m/$1/$2" ]; then cp "$m/$1/$2" "$part" && chmod u+w "$part" && src="copied from $m"; break; fi
  done
  if [ -z "$src" ]; then
    from_upstream "$4" "$part" "$5" "$6" "$7" || { rm -f "$part"; failed+=("$1/$2"); return 0; }
    src="from upstream ($upstream/$5${6:+ member $6})"
  fi
  local got; got=$(sha256_of "$part")
  if [ "$got" != "$3" ]; then
    rm -f "$part" "$out"
    fail "SHA-256 mismatch for $1/$2 $src: expected $3, got $got; deleted it"
    failed+=("$1/$2")
    return 0
  fi
  mv "$part" "$out"
  say "$1/$2: $src (SHA-256 ok)"
  fetched=$((fetched + 1))
}

fetch_corpus() { # name
  local n=0
  kept=0 fetched=0
  local before=${#failed[@]}
  while IFS='|' read -r corpus file sha how path member asha; do
    [ "$corpus" = "$1" ] || continue
    n=$((n + 1))
    fetch_file "$corpus" "$file" "$sha" "$how" "$path" "$member" "$asha" </dev/null
  done <<<"$MANIFEST"
  say "$1: $n files in $dest/$1: $kept already present and verified, $fetched fetched, $((${#failed[@]} - before)) failed"
}

main() {
  [ $# -gt 0 ] || { usage >&2; exit 2; }
  local names=() all a
  for a in "$@"; do
    case "$a" in
      -h|--help) usage; exit 0 ;;
      all) read -r -a all <<<"$ALL"; names+=("${all[@]}") ;;
      multi30k|tatoeba-eng-fra|chatterbot|dailydialog) names+=("$a") ;;
      *) fail "unknown corpus '$a'; choose from: $ALL, all (see --help)"; exit 2 ;;
    esac
  done
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  failed=()
  for a in "${names[@]}"; do fetch_corpus "$a"; done
  if [ ${#failed[@]} -gt 0 ]; then
    fail "${#failed[@]} file(s) could not be fetched or did not match their SHA-256: ${failed[*]}"
    exit 1
  fi
  say "done: ${names[*]} in $dest"
}

main "$@"
