"""The language of a sample, detected from its text by script.

Good enough to tag training data, which is what `Sample.lang` is for (mixing ratios, the
translate stage's "already in the target language" check, statistics): Latin script is "en",
Han text is "zh-Hant" or "zh-Hans" by the characters that differ between the two scripts ("zh"
when the text uses none of them), kana "ja", Hangul "ko", and other scripts their main language.
An explicit `--lang` always wins (`base.lang_for`).
"""

from __future__ import annotations

import unicodedata
from typing import Iterable

from raypipe.schema import Message

# Common characters written differently in Simplified and Traditional Chinese (simplified first).
# Characters shared by both scripts, or whose mapping is ambiguous (系/係/繫, 面/麵, 台/臺), are left out.
_PAIRS = (
    "个個这這们們来來时時为為说說国國会會对對发發后後过過还還没沒经經动動学學关關点點长長间間"
    "开開现現问問见見体體题題实實应應边邊东東车車书書马馬门門电電话話气氣语語认認识識记記让讓"
    "请請计計设設议議论論头頭听聽写寫买買卖賣钱錢银銀价價务務费費单單号號码碼网網络絡线線机機"
    "场場飞飛从從几幾岁歲两兩万萬亿億华華汉漢湾灣乐樂欢歡爱愛亲親员員师師医醫药藥给給红紅绿綠"
    "蓝藍黄黃鱼魚鸟鳥龙龍风風云雲雾霧热熱温溫湿濕阴陰阳陽预預报報帮幫订訂购購货貨运運输輸办辦"
    "处處总總统統级級区區县縣选選择擇确確证證护護险險账賬户戶资資产產业業质質标標准準备備结結"
    "构構类類项項组組织織数數据據库庫历歷纪紀录錄脑腦软軟载載删刪检檢测測试試变變换換转轉调調"
    "视視频頻图圖传傳递遞邮郵联聯讯訊错錯误誤难難简簡读讀诉訴谁誰吗嗎么麼样樣该該饭飯馆館厅廳"
    "张張条條种種块塊际際离離远遠进進达達连連页頁须須顾顧虑慮惯慣兴興决決响響声聲闻聞杂雜观觀"
    "剧劇戏戲节節庆慶礼禮双雙虽雖当當尽盡仅僅严嚴纸紙笔筆专專宽寬猫貓鸡雞猪豬园園楼樓层層灯燈"
    "钟鐘针針缝縫裤褲袜襪饮飲汤湯烟煙尔爾伦倫约約纽紐矶磯顿頓罗羅兰蘭韩韓亚亞欧歐丽麗岛島滩灘"
    "桥橋铁鐵轮輪舰艦规規则則阶階随隨际際细細终終续續简簡积積极極汇匯态態虚虛权權节節杂雜"
)
SIMPLIFIED = frozenset(_PAIRS[0::2])
TRADITIONAL = frozenset(_PAIRS[1::2])

# Script of a letter -> (language tag, letters per word: longer words count less per letter).
_SCRIPTS = {
    "LATIN": ("en", 5.0), "CJK": ("zh", 1.5), "HIRAGANA": ("ja", 1.5), "KATAKANA": ("ja", 1.5),
    "HANGUL": ("ko", 2.0), "CYRILLIC": ("ru", 5.0), "GREEK": ("el", 5.0), "ARABIC": ("ar", 4.0),
    "HEBREW": ("he", 4.0), "THAI": ("th", 4.0), "DEVANAGARI": ("hi", 4.0),
}


def _script(ch: str) -> str | None:
    if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff":
        return "CJK"
    if ch.isascii():
        return "LATIN" if ch.isalpha() else None
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    return next((script for script in _SCRIPTS if name.startswith(script) or f" {script} " in f" {name} "), None)


def detect_lang(text: str) -> str | None:
    """A language tag for `text`, or None when it has no letters."""
    counts: dict[str, int] = {}
    for ch in text:
        script = _script(ch)
        if script:
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    kana = counts.get("HIRAGANA", 0) + counts.get("KATAKANA", 0)
    words = {script: n / _SCRIPTS[script][1] for script, n in counts.items()}
    if kana:  # Japanese writes Han characters too: with kana, they are Japanese
        words["HIRAGANA"] = words.pop("HIRAGANA", 0) + words.pop("KATAKANA", 0) + words.pop("CJK", 0)
    top = max(words, key=words.get)
    if top == "CJK":
        simplified = sum(ch in SIMPLIFIED for ch in text)
        traditional = sum(ch in TRADITIONAL for ch in text)
        if simplified == traditional:
            return "zh"
        return "zh-Hans" if simplified > traditional else "zh-Hant"
    return _SCRIPTS[top][0]


def detect_sample_lang(messages: Iterable[Message], default: str = "en") -> str:
    """The language of a conversation: of what the user wrote, else of all its text."""
    messages = list(messages)
    for pool in ([m for m in messages if m.role == "user"], messages):
        found = detect_lang("\n".join(m.content or "" for m in pool))
        if found:
            return found
    return default
