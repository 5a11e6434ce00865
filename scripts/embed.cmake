# Embeds a text file as a NUL-terminated C string: cmake -DIN= -DOUT= -DNAME= -P embed.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} */\nconst char ${NAME}[] = {${arr}0x00};\n")
